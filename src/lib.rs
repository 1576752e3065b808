//! Facade of the blindtuner workspace: re-exports the core crates so the cross-crate tests in
//! `tests/`, the examples and the criterion benchmarks in `benches/` can name them from one
//! place, plus [`harness`], the in-process two-party set-up they share.
//! The crates themselves are `fhe-core`, `trainer-core`, `extractor` and `tui`.

pub use fhe_core;
pub use trainer_core;

pub mod harness {
    //! Both parties in one process, for tests, examples and benchmarks: the hospital's secret
    //! key, encoder and encryption; the cloud's CKKS backend with evaluation keys for a layout
    //! and the hospital-aided refresh answered in process ([`LocalHospital`]), or
    //! bootstrapping ([`setup_bootstrap`]).

    use std::sync::Arc;

    use fhe_core::Error;
    use fhe_core::bootstrap::Bootstrapper;
    use fhe_core::ciphertext::Ciphertext;
    use fhe_core::encoding::Encoder;
    use fhe_core::encrypt::{decrypt, encrypt_sk};
    use fhe_core::keys::{EvalKeys, SecretKey};
    use fhe_core::params::Params;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use trainer_core::backend::Backend;
    use trainer_core::ckks::{Bootstrap, CkksBackend, LocalHospital, MaskedRefresh};
    use trainer_core::layout::Layout;

    /// The refresher of the in-process set-up.
    pub type LocalRefresh = MaskedRefresh<ChaCha20Rng, LocalHospital<ChaCha20Rng>>;

    /// The hospital's side: parameters, secret key, encoder, the level and scale of fresh
    /// ciphertexts.
    #[derive(Debug)]
    pub struct Hospital {
        /// Parameters.
        pub params: Params,
        /// The secret key (never leaves this struct in a real deployment).
        pub sk: SecretKey,
        /// Full-slot encoder.
        pub encoder: Encoder,
        /// Level of fresh ciphertexts (the backend's top level).
        pub level: usize,
        /// Scale of fresh ciphertexts.
        pub scale: f64,
        /// Level data is encrypted at ([`trainer_core::ckks::data_level`]).
        pub data_level: usize,
        /// Scale of data ciphertexts.
        pub data_scale: f64,
        rng: ChaCha20Rng,
    }

    impl Hospital {
        /// The hospital encrypting at `cloud`'s top level and canonical scale.
        fn new<R>(
            params: &Params,
            sk: SecretKey,
            cloud: &CkksBackend<R>,
            rng: ChaCha20Rng,
        ) -> Result<Self, Error>
        where
            R: trainer_core::ckks::Refresher,
        {
            let level = cloud.top_level();
            let data_level = trainer_core::ckks::data_level(params).min(level);
            Ok(Self {
                params: params.clone(),
                sk,
                encoder: Encoder::new(params, params.max_slots())?,
                level,
                scale: cloud.scale_at(level),
                data_level,
                data_scale: cloud.scale_at(data_level),
                rng,
            })
        }

        /// Encrypts a full slot vector at the training level (seeded, secret-key encryption).
        pub fn encrypt(&mut self, values: &[f64]) -> Result<Ciphertext, Error> {
            self.encrypt_at(values, self.scale, self.level)
        }

        /// Encrypts packed data (samples or labels) at the data level, as the hospital uploads
        /// it.
        pub fn encrypt_data(&mut self, values: &[f64]) -> Result<Ciphertext, Error> {
            self.encrypt_at(values, self.data_scale, self.data_level)
        }

        fn encrypt_at(
            &mut self,
            values: &[f64],
            scale: f64,
            level: usize,
        ) -> Result<Ciphertext, Error> {
            let pt = self.encoder.encode_at(values, scale, level)?;
            encrypt_sk(&self.params, &self.sk, &pt, &mut self.rng)
        }

        /// Decrypts and decodes a slot vector.
        pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<f64>, Error> {
            self.encoder.decode(&decrypt(&self.params, &self.sk, ct)?)
        }
    }

    /// Generates the keys for `layout` from `seed` and returns the hospital and the cloud's
    /// backend (evaluation keys, refresh answered by a [`LocalHospital`] holding a copy of the
    /// secret key).
    pub fn setup(
        params: &Params,
        layout: &Layout,
        seed: u64,
    ) -> Result<(Hospital, CkksBackend<LocalRefresh>), Error> {
        setup_with_keys(params, &layout.all_steps(), false, seed)
    }

    /// [`setup`] with rotation keys for `steps` and, if `conjugate`, the conjugation key
    /// (HETAL's products, [`trainer_core::hetal`], use both).
    pub fn setup_with_keys(
        params: &Params,
        steps: &[i64],
        conjugate: bool,
        seed: u64,
    ) -> Result<(Hospital, CkksBackend<LocalRefresh>), Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let sk = SecretKey::generate(params, &mut rng)?;
        let keys = EvalKeys::generate(&sk, steps, conjugate, &mut rng)?;
        let refresher = MaskedRefresh::new(
            params,
            ChaCha20Rng::seed_from_u64(seed ^ 0x636c_6f75),
            LocalHospital::new(
                params,
                SecretKey::from_coeffs(params, sk.coeffs())?,
                ChaCha20Rng::seed_from_u64(seed ^ 0x686f_7370),
            ),
        );
        let cloud = CkksBackend::new(params, Arc::new(keys), refresher)?;
        Ok((Hospital::new(params, sk, &cloud, rng)?, cloud))
    }

    /// The bootstrapped set-up: keys for `layout` plus the bootstrapping keys of `params` (a
    /// bootstrappable preset), and a cloud backend that refreshes by bootstrapping alone,
    /// working below the level bootstrapping leaves ([`Bootstrap`]). The hospital encrypts at
    /// that working level.
    pub fn setup_bootstrap(
        params: &Params,
        layout: &Layout,
        seed: u64,
    ) -> Result<(Hospital, CkksBackend<Bootstrap>), Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let sk = SecretKey::generate(params, &mut rng)?;
        let boot = Bootstrapper::new(params, trainer_core::ckks::bootstrap_config(params, layout))?;
        let after = boot.levels_after();
        // Each key cut to the level it is used at as soon as it is made (the cloud's view;
        // the hospital's key file holds whole keys).
        let levels = trainer_core::ckks::bootstrap_key_levels(
            params,
            layout,
            &boot,
            after.saturating_sub(1),
        );
        let keys =
            Arc::new(boot.generate_keys_truncated(&sk, &layout.all_steps(), &levels, &mut rng)?);
        let cloud = CkksBackend::new(params, keys.clone(), Bootstrap::new(params, boot, keys))?
            .with_top_level(after.saturating_sub(1))?;
        Ok((Hospital::new(params, sk, &cloud, rng)?, cloud))
    }
}
