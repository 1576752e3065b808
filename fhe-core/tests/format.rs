//! File formats (`fhe_core::format`): round trips of every kind on two parameter sets,
//! header/kind/fingerprint rejections, a no-panic property test over malformed input for every
//! loader, and (ignored) the sizes at N = 2^16.

// Test code: panicking on a broken invariant is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, OnceLock};

use fhe_core::Error;
use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::{Encoder, Precision};
use fhe_core::encrypt::{decrypt, encrypt_pk, encrypt_sk};
use fhe_core::eval::Evaluator;
use fhe_core::format::{WireObject, packed_poly_len};
use fhe_core::keys::{EvalKeys, PublicKey, SecretKey};
use fhe_core::params::{Params, ParamsLiteral, presets};
use fhe_core::wire::{HEADER_LEN, Header, ObjectKind};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn values(r: &mut ChaCha20Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

const ROTATIONS: [i64; 3] = [1, -1, 3];

/// Keys and one ciphertext of each shape for a parameter set.
struct World {
    params: Params,
    sk: SecretKey,
    pk: PublicKey,
    keys: EvalKeys,
    enc: Encoder,
    /// Public-key encryption (degree 1, unseeded), top level.
    ct_pk: Ciphertext,
    /// Secret-key encryption (seeded: stored compactly), top level.
    ct_sk: Ciphertext,
    /// Tensor product (degree 2).
    ct_deg2: Ciphertext,
    /// One level down after a relinearised product and a rescale.
    ct_low: Ciphertext,
    v: Vec<f64>,
}

fn world(lit: ParamsLiteral, seed: u64) -> World {
    let params = lit.validate().unwrap();
    let mut r = rng(seed);
    let sk = SecretKey::generate(&params, &mut r).unwrap();
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let keys = EvalKeys::generate(&sk, &ROTATIONS, true, &mut r).unwrap();
    let enc = Encoder::new(&params, params.max_slots()).unwrap();
    let v = values(&mut r, params.max_slots());
    let pt = enc.encode(&v).unwrap();
    let ct_pk = encrypt_pk(&params, &pk, &pt, &mut r).unwrap();
    let ct_sk = encrypt_sk(&params, &sk, &pt, &mut r).unwrap();
    assert!(ct_sk.seed().is_some());
    let eval = Evaluator::with_keys(&params, Arc::new(keys.clone()));
    let mut ct_deg2 = ct_pk.clone();
    eval.mul_into(&ct_pk, &ct_sk, &mut ct_deg2).unwrap();
    let mut scratch = eval.scratch();
    let mut ct_low = eval.mul_relin_new(&ct_pk, &ct_pk, &mut scratch).unwrap();
    eval.rescale_assign(&mut ct_low, &mut scratch).unwrap();
    World {
        params,
        sk,
        pk,
        keys,
        enc,
        ct_pk,
        ct_sk,
        ct_deg2,
        ct_low,
        v,
    }
}

fn toy() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| world(presets::toy_insecure_n10(), 1))
}

fn round_trips(w: &World) {
    let params = &w.params;

    // Params: rebuilt from the file alone, same fingerprint, primes and literal fields.
    let p2 = Params::from_bytes(&params.to_bytes().unwrap()).unwrap();
    assert_eq!(p2.fingerprint(), params.fingerprint());
    assert_eq!((p2.q(), p2.p()), (params.q(), params.p()));
    assert_eq!(
        (
            p2.log_n(),
            p2.log_scale(),
            p2.dnum(),
            p2.secret(),
            p2.security()
        ),
        (
            params.log_n(),
            params.log_scale(),
            params.dnum(),
            params.secret(),
            params.security()
        )
    );

    // Secret key (loaded against the reloaded params).
    let sk_file = w.sk.to_bytes(params).unwrap();
    assert_eq!(sk_file.len(), HEADER_LEN + 2 + params.n() / 4);
    let sk2 = SecretKey::from_bytes(&p2, &sk_file).unwrap();
    assert_eq!(sk2.coeffs(), w.sk.coeffs());

    // Public key.
    let pk2 = PublicKey::from_bytes(&p2, &w.pk.to_bytes(params).unwrap()).unwrap();
    assert_eq!(pk2, w.pk);

    // Evaluation keys: equal, and rotations / products through them are identical.
    let keys_file = w.keys.to_bytes(params).unwrap();
    let keys2 = EvalKeys::from_bytes(&p2, &keys_file).unwrap();
    assert_eq!(keys2, w.keys);
    assert_eq!(keys2.galois.len(), ROTATIONS.len() + 1);
    let e1 = Evaluator::with_keys(params, Arc::new(w.keys.clone()));
    let e2 = Evaluator::with_keys(&p2, Arc::new(keys2));
    let (mut s1, mut s2) = (e1.scratch(), e2.scratch());
    for step in ROTATIONS {
        assert_eq!(
            e1.rotate_new(&w.ct_pk, step, &mut s1).unwrap(),
            e2.rotate_new(&w.ct_pk, step, &mut s2).unwrap()
        );
    }
    assert_eq!(
        e1.conjugate_new(&w.ct_sk, &mut s1).unwrap(),
        e2.conjugate_new(&w.ct_sk, &mut s2).unwrap()
    );
    assert_eq!(
        e1.mul_relin_new(&w.ct_pk, &w.ct_sk, &mut s1).unwrap(),
        e2.mul_relin_new(&w.ct_pk, &w.ct_sk, &mut s2).unwrap()
    );

    // Ciphertexts of every shape: identical after reloading, and the reloaded secret key
    // decrypts them to the same values.
    for (name, ct) in [
        ("pk", &w.ct_pk),
        ("sk seeded", &w.ct_sk),
        ("degree 2", &w.ct_deg2),
        ("lower level", &w.ct_low),
    ] {
        let file = ct.to_bytes(params).unwrap();
        let ct2 = Ciphertext::from_bytes(&p2, &file).unwrap();
        assert_eq!(&ct2, ct, "{name}");
        assert_eq!(ct2.seed(), ct.seed(), "{name}");
        let a = decrypt(params, &w.sk, ct).unwrap();
        let b = decrypt(&p2, &sk2, &ct2).unwrap();
        assert_eq!(a, b, "{name}");
    }
    let got = w
        .enc
        .decode(
            &decrypt(
                &p2,
                &sk2,
                &Ciphertext::from_bytes(&p2, &w.ct_sk.to_bytes(params).unwrap()).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
    assert!(Precision::of_real(&w.v, &got).min_bits > 20.0);

    // The seeded ciphertext stores c_0 only: half the size, give or take the framing.
    let full = w.ct_pk.to_bytes(params).unwrap().len();
    let compact = w.ct_sk.to_bytes(params).unwrap().len();
    let poly = packed_poly_len(params.ctx(), params.max_level(), false);
    assert_eq!(full - compact, poly - 32);
}

#[test]
fn every_kind_round_trips_on_the_toy_preset() {
    round_trips(toy());
}

#[test]
fn every_kind_round_trips_on_n13() {
    round_trips(&world(presets::n13(), 7));
}

#[test]
fn residues_are_packed_at_their_prime_width() {
    let w = toy();
    let params = &w.params;
    let n = params.n();
    // Q = 50 + 4 × 40 bits, P = 2 × 50 bits.
    let q_bits: usize = params
        .q()
        .iter()
        .map(|q| 64 - q.leading_zeros() as usize)
        .sum();
    let p_bits: usize = params
        .p()
        .iter()
        .map(|p| 64 - p.leading_zeros() as usize)
        .sum();
    assert_eq!((q_bits, p_bits), (210, 100));
    // Public key: header + 32-byte seed + length varint + packed b.
    let pk_file = w.pk.to_bytes(params).unwrap();
    assert_eq!(pk_file.len(), HEADER_LEN + 32 + 3 + n * q_bits / 8);
    // A Galois key: its digits' b halves at (Q + P) bits per coefficient.
    let one_key = n * (q_bits + p_bits) / 8 * params.dnum();
    let keys_file = w.keys.to_bytes(params).unwrap();
    let framing = keys_file.len() - HEADER_LEN - one_key * (1 + w.keys.galois.len());
    assert!(framing < 64 * (1 + w.keys.galois.len()), "{framing}");
}

// ----- rejections -----

fn all_files(w: &World) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("params", w.params.to_bytes().unwrap()),
        ("secret key", w.sk.to_bytes(&w.params).unwrap().to_vec()),
        ("public key", w.pk.to_bytes(&w.params).unwrap()),
        ("eval keys", w.keys.to_bytes(&w.params).unwrap()),
        ("ct pk", w.ct_pk.to_bytes(&w.params).unwrap()),
        ("ct sk", w.ct_sk.to_bytes(&w.params).unwrap()),
        ("ct degree 2", w.ct_deg2.to_bytes(&w.params).unwrap()),
        ("ct low", w.ct_low.to_bytes(&w.params).unwrap()),
    ]
}

/// Every loader applied to `bytes` with `params`; results reduced to `Ok(kind)` / `Err`.
fn load_all(params: &Params, bytes: &[u8]) -> [Result<ObjectKind, Error>; 5] {
    [
        Params::from_bytes(bytes).map(|_| ObjectKind::Params),
        SecretKey::from_bytes(params, bytes).map(|_| ObjectKind::SecretKey),
        PublicKey::from_bytes(params, bytes).map(|_| ObjectKind::PublicKey),
        EvalKeys::from_bytes(params, bytes).map(|_| ObjectKind::EvalKeys),
        Ciphertext::from_bytes(params, bytes).map(|_| ObjectKind::Ciphertext),
    ]
}

#[test]
fn a_secret_key_file_is_refused_by_every_cloud_loader_naming_both_kinds() {
    let w = toy();
    let sk_file = w.sk.to_bytes(&w.params).unwrap();
    let cases = [
        (
            EvalKeys::from_bytes(&w.params, &sk_file).unwrap_err(),
            ObjectKind::EvalKeys,
        ),
        (
            Ciphertext::from_bytes(&w.params, &sk_file).unwrap_err(),
            ObjectKind::Ciphertext,
        ),
        (
            PublicKey::from_bytes(&w.params, &sk_file).unwrap_err(),
            ObjectKind::PublicKey,
        ),
        (
            Params::from_bytes(&sk_file).unwrap_err(),
            ObjectKind::Params,
        ),
    ];
    for (err, expected) in cases {
        assert_eq!(
            err,
            Error::WrongKind {
                expected: expected as u16,
                found: ObjectKind::SecretKey as u16
            }
        );
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!(
                "wrong object kind: expected {}, found SecretKey",
                expected.name()
            )
        );
    }
}

#[test]
fn each_file_is_accepted_by_its_own_loader_only() {
    let w = toy();
    for (name, file) in all_files(w) {
        let want = Header::decode(&file).unwrap().0.kind;
        for got in load_all(&w.params, &file) {
            match got {
                Ok(kind) => assert_eq!(kind, want, "{name}"),
                Err(Error::WrongKind { expected, found }) => {
                    assert_eq!(found, want as u16, "{name}");
                    assert_ne!(expected, found, "{name}");
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
}

#[test]
fn loading_with_other_params_is_a_fingerprint_mismatch() {
    let w = toy();
    let mut lit = presets::toy_insecure_n10();
    lit.log_scale = 39.0;
    let other = lit.validate().unwrap();
    let expected = other.fingerprint();
    let found = w.params.fingerprint();
    let fm = Error::FingerprintMismatch { expected, found };
    assert_eq!(
        SecretKey::from_bytes(&other, &w.sk.to_bytes(&w.params).unwrap()).unwrap_err(),
        fm
    );
    assert_eq!(
        PublicKey::from_bytes(&other, &w.pk.to_bytes(&w.params).unwrap()).unwrap_err(),
        fm
    );
    assert_eq!(
        EvalKeys::from_bytes(&other, &w.keys.to_bytes(&w.params).unwrap()).unwrap_err(),
        fm
    );
    assert_eq!(
        Ciphertext::from_bytes(&other, &w.ct_pk.to_bytes(&w.params).unwrap()).unwrap_err(),
        fm
    );
    // A key of other params cannot be written with these.
    assert!(matches!(
        w.sk.to_bytes(&other),
        Err(Error::ParamsMismatch { .. })
    ));
    // A params file whose header fingerprint was altered.
    let mut pf = w.params.to_bytes().unwrap();
    pf[8] ^= 1;
    assert!(matches!(
        Params::from_bytes(&pf),
        Err(Error::FingerprintMismatch { .. })
    ));
}

#[test]
fn header_rejections() {
    let w = toy();
    let file = w.pk.to_bytes(&w.params).unwrap();
    let load = |b: &[u8]| PublicKey::from_bytes(&w.params, b).unwrap_err();
    let mut bad = file.clone();
    bad[0] = b'X';
    assert_eq!(load(&bad), Error::BadMagic);
    let mut bad = file.clone();
    bad[4] = 2;
    assert_eq!(
        load(&bad),
        Error::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    let mut bad = file.clone();
    bad[6] = 99;
    assert!(matches!(load(&bad), Error::UnknownCode { code: 99, .. }));
    assert!(matches!(
        load(&file[..file.len() - 1]),
        Error::Truncated { .. }
    ));
    let mut long = file.clone();
    long.push(0);
    assert!(matches!(load(&long), Error::Truncated { .. }));
    assert!(matches!(load(&[]), Error::Truncated { .. }));
}

#[test]
fn an_unreduced_residue_is_refused() {
    let w = toy();
    let mut file = w.pk.to_bytes(&w.params).unwrap();
    // Header, 32-byte seed, 3-byte length of the packed `b`, then b's first residue (50 bits
    // of limb 0, whose prime is below 2^50): all ones.
    let at = HEADER_LEN + 32 + 3;
    for b in &mut file[at..at + 6] {
        *b = 0xff;
    }
    file[at + 6] |= 0b11;
    assert_eq!(
        PublicKey::from_bytes(&w.params, &file).unwrap_err(),
        Error::CoefficientNotReduced {
            limb: 0,
            modulus: w.params.q()[0]
        }
    );
}

#[test]
fn writers_refuse_invalid_ciphertext_metadata() {
    let w = toy();
    let mut ct = w.ct_pk.clone();
    ct.scale = f64::NAN;
    assert!(matches!(
        ct.to_bytes(&w.params),
        Err(Error::InvalidScale { .. })
    ));
    let mut ct = w.ct_pk.clone();
    ct.slots = 3;
    assert_eq!(
        ct.to_bytes(&w.params).unwrap_err(),
        Error::InvalidSlots {
            slots: 3,
            max: w.params.max_slots()
        }
    );
    // A ciphertext of other parameters (N = 2^13) does not fit the toy parameters.
    let n13 = world(presets::n13(), 3);
    assert!(n13.ct_pk.to_bytes(&w.params).is_err());
    assert!(n13.pk.to_bytes(&w.params).is_err());
    assert!(n13.keys.to_bytes(&w.params).is_err());
}

// ----- malformed input never panics -----

fn check_all_loaders(params: &Params, bytes: &[u8]) -> Result<(), TestCaseError> {
    for (i, got) in load_all(params, bytes).into_iter().enumerate() {
        if got.is_ok() {
            // Whatever is accepted is canonical: writing it again gives the same bytes.
            let again = match i {
                0 => Params::from_bytes(bytes).unwrap().to_bytes().unwrap(),
                1 => SecretKey::from_bytes(params, bytes)
                    .unwrap()
                    .to_bytes(params)
                    .unwrap()
                    .to_vec(),
                2 => PublicKey::from_bytes(params, bytes)
                    .unwrap()
                    .to_bytes(params)
                    .unwrap(),
                3 => EvalKeys::from_bytes(params, bytes)
                    .unwrap()
                    .to_bytes(params)
                    .unwrap(),
                _ => Ciphertext::from_bytes(params, bytes)
                    .unwrap()
                    .to_bytes(params)
                    .unwrap(),
            };
            prop_assert_eq!(
                &again[..],
                bytes,
                "loader {} accepted a non-canonical file",
                i
            );
        }
    }
    Ok(())
}

fn file_strategy() -> impl Strategy<Value = Vec<u8>> {
    let files: Vec<Vec<u8>> = all_files(toy()).into_iter().map(|(_, f)| f).collect();
    (0..files.len()).prop_map(move |i| files[i].clone())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_all_loaders(&toy().params, &bytes)?;
    }

    /// Random payloads behind a well-formed header of every kind, so they reach the payload
    /// parsers.
    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(
        kind in 1u16..=12,
        payload in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let params = &toy().params;
        let kind = ObjectKind::from_code(kind).unwrap();
        let mut f = Header::encode(kind, params.fingerprint(), payload.len()).to_vec();
        f.extend_from_slice(&payload);
        check_all_loaders(params, &f)?;
    }

    #[test]
    fn truncated_files_are_errors(file in file_strategy(), cut in any::<prop::sample::Index>()) {
        let params = &toy().params;
        let cut = cut.index(file.len());
        for r in load_all(params, &file[..cut]) {
            prop_assert!(r.is_err());
        }
        // The same prefix with its header's payload length corrected reaches the parsers.
        let fixed = Header::decode(&file).unwrap().0;
        if cut >= HEADER_LEN {
            let mut f = Header::encode(fixed.kind, fixed.fingerprint, cut - HEADER_LEN).to_vec();
            f.extend_from_slice(&file[HEADER_LEN..cut]);
            for r in load_all(params, &f) {
                prop_assert!(r.is_err());
            }
        }
    }

    #[test]
    fn single_byte_flips_never_panic(
        file in file_strategy(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let mut f = file;
        let at = at.index(f.len());
        f[at] ^= xor;
        check_all_loaders(&toy().params, &f)?;
    }
}

// ----- sizes at N = 2^16 -----

/// Serialized sizes at N = 2^16 with `presets::n16_openfhe()` (q_0 60 bits + 24 × 50 bits,
/// P = 8 × 60 bits, dnum 3). Key generation at this size takes a while, so run it explicitly:
///
/// ```text
/// cargo test -p fhe-core --features std --test format -- --ignored --nocapture sizes_at_n16
/// ```
#[test]
#[ignore = "N=2^16 key generation is slow; run explicitly"]
fn sizes_at_n16() {
    let params = presets::n16_openfhe().validate().unwrap();
    let mut r = rng(16);
    let sk = SecretKey::generate(&params, &mut r).unwrap();
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let keys = EvalKeys::generate(&sk, &[1], false, &mut r).unwrap();
    let enc = Encoder::new(&params, params.max_slots()).unwrap();
    let v = values(&mut r, params.max_slots());
    let pt = enc.encode(&v).unwrap();
    let ct_pk = encrypt_pk(&params, &pk, &pt, &mut r).unwrap();
    let ct_sk = encrypt_sk(&params, &sk, &pt, &mut r).unwrap();

    let relin_only = EvalKeys {
        relin: keys.relin.clone(),
        galois: Default::default(),
    };
    let rot_only = EvalKeys {
        relin: None,
        galois: keys.galois.clone(),
    };
    let n = params.n();
    let q_bits: u32 = params.q().iter().map(|q| 64 - q.leading_zeros()).sum();
    let p_bits: u32 = params.p().iter().map(|p| 64 - p.leading_zeros()).sum();
    let raw_poly_q = n * params.q().len() * 8;
    let raw_key = params.dnum() * n * (params.q().len() + params.p().len()) * 8;
    let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
    let rows = [
        ("params", params.to_bytes().unwrap().len(), 0),
        ("secret key", sk.to_bytes(&params).unwrap().len(), n * 8),
        (
            "public key",
            pk.to_bytes(&params).unwrap().len(),
            2 * raw_poly_q,
        ),
        (
            "ciphertext (public-key encryption, top level)",
            ct_pk.to_bytes(&params).unwrap().len(),
            2 * raw_poly_q,
        ),
        (
            "ciphertext (seeded secret-key encryption, top level)",
            ct_sk.to_bytes(&params).unwrap().len(),
            2 * raw_poly_q,
        ),
        (
            "relinearisation key",
            relin_only.to_bytes(&params).unwrap().len(),
            2 * raw_key,
        ),
        (
            "one rotation key",
            rot_only.to_bytes(&params).unwrap().len(),
            2 * raw_key,
        ),
    ];
    println!(
        "n16_openfhe: N = 2^16, log Q = {q_bits}, log P = {p_bits}, dnum = {}",
        params.dnum()
    );
    println!(
        "{:<54} {:>12} {:>10} {:>18}",
        "object", "bytes", "MiB", "naive u64 form"
    );
    for (name, bytes, raw) in rows {
        println!(
            "{name:<54} {bytes:>12} {:>10.2} {:>14.2} MiB",
            mib(bytes),
            mib(raw)
        );
    }
    println!("(naive: every residue as a u64, uniform halves stored; secret key as i64)");
    let t = std::time::Instant::now();
    let file = relin_only.to_bytes(&params).unwrap();
    let write = t.elapsed();
    let t = std::time::Instant::now();
    let back = EvalKeys::from_bytes(&params, &file).unwrap();
    let read = t.elapsed();
    assert_eq!(back, relin_only);
    println!("relinearisation key: write {write:.2?}, read (checks + seed expansion) {read:.2?}");
    // Packed at the prime widths: (log Q) bits per coefficient per polynomial.
    let poly = n * q_bits as usize / 8;
    assert!(ct_pk.to_bytes(&params).unwrap().len() - 2 * poly < 64);
    assert!(ct_sk.to_bytes(&params).unwrap().len() - poly < 96);
}
