//! The bilinear resize against Pillow's own output (known answers made by
//! `fixtures/pillow_resize/make_pillow_resize.py`): upsampling, identity, downsampling, odd sizes.

use extractor::preprocess::{ImageRef, resize_bilinear};
use sha2::{Digest, Sha256};

#[test]
fn resize_is_bit_identical_to_pillow() {
    let answers = include_str!("../../fixtures/pillow_resize/pillow_resize.txt");
    let mut checked = 0;
    for line in answers
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (w, h, c): (usize, usize, usize) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        let data: Vec<u8> = (0..h)
            .flat_map(|y| {
                (0..w).flat_map(move |x| {
                    (0..c).map(move |k| ((7 * x + 13 * y + 101 * k + (x * y) % 31) % 256) as u8)
                })
            })
            .collect();
        let out = resize_bilinear(
            ImageRef {
                width: w,
                height: h,
                channels: c,
                data: &data,
            },
            224,
            224,
        )
        .unwrap();
        let got: String = Sha256::digest(&out.data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, f[3], "{w}x{h}x{c}");
        checked += 1;
    }
    assert_eq!(checked, 12);
}
