//! Known-answer vectors for the fhe-core foundation, made from fixed seeds and locked by a
//! checksum in `fixtures/kat/` (STYLE.md 13). Any change to prime generation, the NTT order,
//! the samplers, encoding, rescaling, basis extension or automorphisms changes a line here.
//!
//! Regenerate (only after an intended change, and say why in the commit):
//! `BLINDTUNER_WRITE_KAT=1 cargo test -p fhe-core --features std --test kat`

// Test code: panicking on a broken invariant is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::path::PathBuf;

use fhe_core::encoding::{Complex, Encoder};
use fhe_core::params::presets;
use fhe_core::ring::{Coeff, Ntt, Poly};
use fhe_core::sampling::{Gaussian, sparse_ternary, ternary};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha2::{Digest, Sha256};

const FILE: &str = "fhe_core_foundation.kat";

fn kat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/kat")
}

fn fnv(words: impl IntoIterator<Item = u64>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn line(out: &mut String, stage: &str, words: &[u64]) {
    let first: Vec<String> = words.iter().take(4).map(u64::to_string).collect();
    writeln!(
        out,
        "{stage}: len={} fnv64={:016x} first=[{}]",
        words.len(),
        fnv(words.iter().copied()),
        first.join(",")
    )
    .unwrap();
}

fn signed(v: &[i64]) -> Vec<u64> {
    v.iter().map(|&x| x as u64).collect()
}

fn compute() -> String {
    let params = presets::n13().validate().unwrap();
    let ctx = params.ctx();
    let n = params.n();
    let top = params.max_level();
    let mut rng = ChaCha20Rng::seed_from_u64(0x424c_544e);
    let mut out = String::new();
    writeln!(
        out,
        "# blindtuner fhe-core foundation known answers, preset n13, seed 0x424c544e"
    )
    .unwrap();
    line(&mut out, "primes_q", params.q());
    line(&mut out, "primes_p", params.p());
    writeln!(out, "fingerprint: {:016x}", params.fingerprint()).unwrap();

    let mut t = vec![0i64; n];
    ternary(&mut rng, &mut t);
    line(&mut out, "ternary", &signed(&t));
    sparse_ternary(&mut rng, 64, &mut t).unwrap();
    line(&mut out, "sparse_ternary_h64", &signed(&t));
    Gaussian::new(3.2).unwrap().sample(&mut rng, &mut t);
    line(&mut out, "gaussian_3.2", &signed(&t));

    let u = Poly::<Ntt>::uniform(ctx, top, false, &mut rng);
    line(&mut out, "uniform_ntt", u.data());
    let u_coeff = u.clone().into_coeff(ctx);
    line(&mut out, "uniform_intt", u_coeff.data());

    let enc = Encoder::new(&params, params.max_slots()).unwrap();
    let v: Vec<Complex> = (0..params.max_slots())
        .map(|i| Complex::new((i as f64).sin() / 2.0, (i as f64 * 0.5).cos() / 3.0))
        .collect();
    let pt = enc.encode_complex_at(&v, params.scale(), top).unwrap();
    line(&mut out, "encode_n13_full_slots", pt.poly.data());
    let sparse = Encoder::new(&params, 16)
        .unwrap()
        .encode_at(&[0.75; 16], params.scale(), 1)
        .unwrap();
    line(&mut out, "encode_n13_16_slots_level1", sparse.poly.data());

    let mut prod = Poly::zero(ctx, 0, false);
    u.mul_into(ctx, &pt.poly, &mut prod).unwrap();
    let mut scratch = vec![0u64; ctx.mod_down_scratch_len().max(ctx.extend_scratch_len())];
    prod.rescale_assign(ctx, &mut scratch).unwrap();
    line(&mut out, "mul_rescale", prod.data());

    let mut ext: Poly<Coeff> = u_coeff.clone();
    ext.extend_to_p_assign(ctx, &mut scratch).unwrap();
    line(&mut out, "extend_to_p", ext.data());
    let mut down = Poly::<Ntt>::uniform(ctx, top, true, &mut rng);
    down.mod_down_assign(ctx, &mut scratch).unwrap();
    line(&mut out, "mod_down", down.data());

    let mut rot = Poly::zero(ctx, 0, false);
    u.automorphism_into(&ctx.galois_permutation(5), &mut rot)
        .unwrap();
    line(&mut out, "automorphism_5", rot.data());
    let decoded = enc.decode_complex(&pt).unwrap();
    let bits: Vec<u64> = decoded
        .iter()
        .map(|c| (c.re * 1e6).round() as i64 as u64)
        .collect();
    line(&mut out, "decode_round_1e6", &bits);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares `got` with the committed file `name` (checked against `SHA256SUMS`), or writes
/// both when `BLINDTUNER_WRITE_KAT` is set.
fn check_or_write(name: &str, got: &str) {
    let dir = kat_dir();
    let path = dir.join(name);
    let sums = dir.join("SHA256SUMS");
    let existing = std::fs::read_to_string(&sums).unwrap_or_default();
    if std::env::var_os("BLINDTUNER_WRITE_KAT").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, got).unwrap();
        let mut lines: Vec<String> = existing
            .lines()
            .filter(|l| !l.ends_with(&format!("  {name}")))
            .map(str::to_string)
            .collect();
        lines.push(format!("{}  {name}", sha256_hex(got.as_bytes())));
        lines.sort_by(|a, b| {
            a.split_whitespace()
                .nth(1)
                .cmp(&b.split_whitespace().nth(1))
        });
        std::fs::write(&sums, lines.join("\n") + "\n").unwrap();
        eprintln!("wrote {} and its checksum", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (regenerate with BLINDTUNER_WRITE_KAT=1)",
            path.display()
        )
    });
    let want_line = format!("{}  {name}", sha256_hex(committed.as_bytes()));
    assert!(
        existing.lines().any(|l| l == want_line),
        "{} does not match its checksum in {}",
        path.display(),
        sums.display()
    );
    for (i, (a, b)) in committed.lines().zip(got.lines()).enumerate() {
        assert_eq!(a, b, "{name}: known-answer line {} differs", i + 1);
    }
    assert_eq!(
        committed.lines().count(),
        got.lines().count(),
        "{name}: line count differs"
    );
}

#[test]
fn foundation_known_answers() {
    check_or_write(FILE, &compute());
}

/// encode → encrypt (secret key, seeded) → mul → relin → rescale → rotate → decrypt, n13.
fn compute_scheme() -> String {
    use fhe_core::encrypt::{decrypt, encrypt_pk, encrypt_sk};
    use fhe_core::eval::Evaluator;
    use fhe_core::keys::{EvalKeys, PublicKey, SecretKey};
    let params = presets::n13().validate().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0x5343_4845);
    let mut out = String::new();
    writeln!(
        out,
        "# blindtuner fhe-core scheme known answers, preset n13, seed 0x53434845"
    )
    .unwrap();
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    line(&mut out, "secret_key", &signed(sk.coeffs()));
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    line(&mut out, "public_key_b", pk.b().data());
    let keys = EvalKeys::generate(&sk, &[1], false, &mut rng).unwrap();
    let relin = &keys.relin.as_ref().unwrap().0;
    line(&mut out, "relin_key_b0", relin.b()[0].data());
    let eval = Evaluator::with_keys(&params, std::sync::Arc::new(keys));
    let enc = Encoder::new(&params, params.max_slots()).unwrap();
    let v: Vec<f64> = (0..params.max_slots())
        .map(|i| ((i * 7) % 13) as f64 / 13.0 - 0.5)
        .collect();
    let pt = enc.encode(&v).unwrap();
    let a = encrypt_sk(&params, &sk, &pt, &mut rng).unwrap();
    line(&mut out, "encrypt_sk_c0", a.polys()[0].data());
    let b = encrypt_pk(&params, &pk, &pt, &mut rng).unwrap();
    line(&mut out, "encrypt_pk_c1", b.polys()[1].data());
    let mut s = eval.scratch();
    let mut prod = a.clone();
    eval.mul_into(&a, &b, &mut prod).unwrap();
    line(&mut out, "tensor_c2", prod.polys()[2].data());
    eval.relinearize_assign(&mut prod, &mut s).unwrap();
    line(&mut out, "relin_c0", prod.polys()[0].data());
    eval.rescale_assign(&mut prod, &mut s).unwrap();
    line(&mut out, "rescale_c1", prod.polys()[1].data());
    let rot = eval.rotate_new(&prod, 1, &mut s).unwrap();
    line(&mut out, "rotate1_c0", rot.polys()[0].data());
    let got = enc.decode(&decrypt(&params, &sk, &rot).unwrap()).unwrap();
    let rounded: Vec<u64> = got
        .iter()
        .map(|x| (x * 1e6).round() as i64 as u64)
        .collect();
    line(&mut out, "decrypt_round_1e6", &rounded);
    out
}

#[test]
fn scheme_known_answers() {
    check_or_write("fhe_core_scheme.kat", &compute_scheme());
}
