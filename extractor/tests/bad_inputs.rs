//! Malformed inputs give errors that name the file and the problem, never panics. None of these
//! tests needs ONNX Runtime or `../shared`.

mod common;

use common::data::{images, medmnist, write_npz};
use common::temp_dir;
use extractor::npz::{parse_npy_header, read_npz, read_npz_splits};
use extractor::{Error, folder, runtime};

fn err_text(e: Error) -> String {
    e.to_string()
}

#[test]
fn truncated_npz_at_every_length_is_an_error() {
    let dir = temp_dir("bad-trunc");
    let good = dir.join("good.npz");
    medmnist(&good, 6, 3);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.join("cut.npz");
    for len in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let e = read_npz(&cut).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("cut.npz"), "{e}");
    }
    // Flipped bytes anywhere: an error or a readable file, never a panic.
    for i in (0..bytes.len()).step_by(3) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        std::fs::write(&cut, &b).unwrap();
        let _ = read_npz(&cut);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn not_a_zip_and_missing_file() {
    let dir = temp_dir("bad-notzip");
    let p = dir.join("noise.npz");
    std::fs::write(&p, b"this is not a zip file at all").unwrap();
    let e = err_text(read_npz(&p).unwrap_err());
    assert!(
        e.contains("noise.npz") && e.contains("not a readable .npz"),
        "{e}"
    );
    let e = err_text(read_npz(&dir.join("absent.npz")).unwrap_err());
    assert!(e.contains("absent.npz"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_keys_list_what_the_file_has() {
    let dir = temp_dir("bad-keys");
    let p = dir.join("keys.npz");
    write_npz(&p, |b| {
        b.add("images", &[2, 2], vec![0u8; 4]);
        b.add("train_images", &[1, 2, 2], vec![0u8; 4]);
    });
    let e = read_npz(&p).unwrap_err();
    assert!(matches!(e, Error::NpzLayout { .. }));
    let e = e.to_string();
    assert!(
        e.contains("keys.npz") && e.contains("`images`") && e.contains("x_train"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_array_types_and_shapes() {
    let dir = temp_dir("bad-arrays");
    // (what, the arrays to write, a text the error must contain)
    type Case = (
        &'static str,
        Box<dyn Fn(&mut common::data::NpzBuilder)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "float images",
            Box::new(|b| {
                b.add("train_images", &[2, 4, 4], vec![0.5f32; 32]);
                b.add("train_labels", &[2, 1], vec![0u8, 1]);
            }),
            "must be uint8",
        ),
        (
            "channels first",
            Box::new(|b| {
                b.add("train_images", &[2, 3, 4, 4], vec![0u8; 96]);
                b.add("train_labels", &[2, 1], vec![0u8, 1]);
            }),
            "(N, H, W)",
        ),
        (
            "label count",
            Box::new(|b| {
                let (s, d) = images(3, 4, 0);
                b.add("train_images", &s, d);
                b.add("train_labels", &[2, 1], vec![0u8, 1]);
            }),
            "2 labels for 3 images",
        ),
        (
            "multi-label",
            Box::new(|b| {
                let (s, d) = images(2, 4, 0);
                b.add("train_images", &s, d);
                b.add("train_labels", &[2, 14], vec![0u8; 28]);
            }),
            "multi-label",
        ),
        (
            "negative label",
            Box::new(|b| {
                let (s, d) = images(2, 4, 0);
                b.add("train_images", &s, d);
                b.add("train_labels", &[2], vec![0i64, -3]);
            }),
            "label -3",
        ),
        (
            "float labels",
            Box::new(|b| {
                let (s, d) = images(2, 4, 0);
                b.add("train_images", &s, d);
                b.add("train_labels", &[2], vec![0.0f64, 1.0]);
            }),
            "must be integers",
        ),
        (
            "empty images",
            Box::new(|b| {
                b.add("train_images", &[2, 0, 4], Vec::<u8>::new());
                b.add("train_labels", &[2], vec![0u8, 1]);
            }),
            "empty images",
        ),
    ];
    for (what, add, expected) in cases {
        let p = dir.join(format!("{}.npz", what.replace(' ', "_")));
        write_npz(&p, |b| add(b));
        let e = err_text(read_npz(&p).unwrap_err());
        assert!(
            e.contains(&*p.file_name().unwrap().to_string_lossy()) && e.contains(expected),
            "{what}: {e}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn known_dataset_with_too_many_classes_and_missing_split() {
    let dir = temp_dir("bad-classes");
    let p = dir.join("bloodmnist.npz");
    write_npz(&p, |b| {
        let (s, d) = images(2, 4, 3);
        b.add("test_images", &s, d);
        b.add("test_labels", &[2, 1], vec![0u8, 9]);
    });
    let e = err_text(read_npz(&p).unwrap_err());
    assert!(
        e.contains("bloodmnist.npz") && e.contains("label 9") && e.contains("8 classes"),
        "{e}"
    );
    let e = read_npz_splits(&p, Some(&["train".to_owned()])).unwrap_err();
    assert!(matches!(e, Error::MissingSplit { .. }));
    assert!(
        e.to_string().contains("no split `train`") && e.to_string().contains("`test`"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn npy(header: &str) -> Vec<u8> {
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(header.len() as u16).to_le_bytes());
    v.extend_from_slice(header.as_bytes());
    v
}

#[test]
fn npy_header_parser_rejects_garbage() {
    let h =
        parse_npy_header(&npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")[..])
            .unwrap();
    assert_eq!(
        (h.descr.as_str(), h.shape.as_slice(), h.fortran_order),
        ("<f4", [2u64, 3].as_slice(), false)
    );
    let h =
        parse_npy_header(&npy("{'descr': '|u1', 'fortran_order': True, 'shape': (5,), }    ")[..])
            .unwrap();
    assert_eq!(
        (h.descr.as_str(), h.shape.as_slice(), h.fortran_order),
        ("|u1", [5u64].as_slice(), true)
    );
    let bad_headers = [
        npy("{'shape': (1,)}"),
        npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}"),
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (x, 2), }"),
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': 7, }"),
        b"".to_vec(),
        b"\x93NUMPX\x01\x00\x00\x00".to_vec(),
        b"\x93NUMPY\x09\x00\x00\x00".to_vec(),
        b"\x93NUMPY\x01\x00\xff\xff{'descr'".to_vec(),
    ];
    for bad in bad_headers {
        assert!(parse_npy_header(&bad[..]).is_err(), "{bad:?}");
    }
}

#[test]
fn shape_larger_than_the_entry_is_refused_before_allocating() {
    let dir = temp_dir("bad-huge");
    let p = dir.join("huge.npz");
    // A header claiming 10^12 pixels followed by 16 bytes.
    let mut npy = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000, 1000), }");
    npy.extend_from_slice(&[0; 16]);
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("train_images.npy", o).unwrap();
        z.write_all(&npy).unwrap();
        z.start_file("train_labels.npy", o).unwrap();
        z.write_all(&npy).unwrap();
        z.finish().unwrap();
    }
    let e = err_text(read_npz(&p).unwrap_err());
    assert!(e.contains("huge.npz") && e.contains("truncated"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn folders_empty_corrupt_and_bad_csv() {
    let dir = temp_dir("bad-folder");
    let e = folder::read_folder(&dir, None, None).unwrap_err();
    assert!(
        matches!(e, Error::NoImages { .. }) && e.to_string().contains("no images"),
        "{e}"
    );
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("a/readme.txt"), "not an image").unwrap();
    assert!(matches!(
        folder::read_folder(&dir, None, None),
        Err(Error::NoImages { .. })
    ));
    let e = folder::read_folder(&dir.join("absent"), None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent"), "{e}");

    // A corrupt PNG is listed, and decoding it is an error naming it.
    std::fs::write(dir.join("a/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let source = folder::read_folder(&dir, None, None).unwrap();
    let split = source.split("train").unwrap();
    let e = split.images.get(0, &source.path).unwrap_err().to_string();
    assert!(
        e.contains("broken.png") && e.contains("cannot decode"),
        "{e}"
    );

    let csv = dir.join("labels.csv");
    for (text, expected) in [
        ("name,label\nx.png,1\n", "no `file` column"),
        ("file,kind\nx.png,1\n", "no `label` column"),
        ("file,label\na/missing.png,1\n", "does not exist"),
        ("file,label\na/broken.png,\n", "empty label"),
        ("file,label\na/broken.png,1,extra\n", "line 2"),
    ] {
        std::fs::write(&csv, text).unwrap();
        let e = folder::read_folder(&dir, Some(&csv), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("labels.csv") && e.contains(expected),
            "{text:?}: {e}"
        );
    }
    std::fs::write(&csv, "file,label\n").unwrap();
    assert!(matches!(
        folder::read_folder(&dir, Some(&csv), None),
        Err(Error::NoImages { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_ort_library_path_is_an_error_naming_it() {
    let e =
        runtime::locate(Some(std::path::Path::new("/no/such/dir/libonnxruntime.so"))).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("/no/such/dir/libonnxruntime.so") && msg.contains("not found"),
        "{msg}"
    );
    let dir = temp_dir("bad-ortdir");
    let e = runtime::load(Some(&dir)).unwrap_err().to_string();
    assert!(
        e.contains(&*dir.to_string_lossy()) && e.contains("no libonnxruntime.so"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
