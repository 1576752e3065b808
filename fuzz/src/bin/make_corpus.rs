//! Writes valid files of every kind, made with the toy preset and fixed seeds, into
//! `corpus/<target>/` (run from `fuzz/`): `cargo run --bin make_corpus`.

use std::path::Path;
use std::sync::Arc;

use fhe_core::encoding::Encoder;
use fhe_core::encrypt::{encrypt_pk, encrypt_sk};
use fhe_core::eval::Evaluator;
use fhe_core::format::WireObject;
use fhe_core::keys::{EvalKeys, PublicKey, SecretKey};
use fhe_core::params::presets;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let params = presets::toy_insecure_n10().validate()?;
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let sk = SecretKey::generate(&params, &mut rng)?;
    let pk = PublicKey::generate(&sk, &mut rng)?;
    // Small key sets keep the inputs (and so libFuzzer's max_len) modest.
    let relin_rot = EvalKeys::generate(&sk, &[1], false, &mut rng)?;
    let rot_only = EvalKeys {
        relin: None,
        galois: relin_rot.galois.clone(),
    };
    let enc = Encoder::new(&params, 8)?;
    let pt = enc.encode(&[0.5, -1.0, 0.25])?;
    let ct_pk = encrypt_pk(&params, &pk, &pt, &mut rng)?;
    let ct_sk = encrypt_sk(&params, &sk, &pt, &mut rng)?;
    let eval = Evaluator::with_keys(&params, Arc::new(relin_rot.clone()));
    let mut ct_deg2 = ct_pk.clone();
    eval.mul_into(&ct_pk, &ct_pk, &mut ct_deg2)?;
    let mut low = ct_pk.clone();
    low.drop_to_level(0)?;

    let files: [(&str, &str, Vec<u8>); 10] = [
        ("params", "toy", params.to_bytes()?),
        ("secret_key", "toy", sk.to_bytes(&params)?.to_vec()),
        ("public_key", "toy", pk.to_bytes(&params)?),
        ("eval_keys", "relin_rot1", relin_rot.to_bytes(&params)?),
        ("eval_keys", "rot1", rot_only.to_bytes(&params)?),
        ("eval_keys", "empty", EvalKeys::default().to_bytes(&params)?),
        ("ciphertext", "pk", ct_pk.to_bytes(&params)?),
        ("ciphertext", "sk_seeded", ct_sk.to_bytes(&params)?),
        ("ciphertext", "degree2", ct_deg2.to_bytes(&params)?),
        ("ciphertext", "level0", low.to_bytes(&params)?),
    ];
    for (target, name, bytes) in files {
        let dir = Path::new("corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), &bytes)?;
        println!("corpus/{target}/{name}: {} bytes", bytes.len());
    }
    Ok(())
}
