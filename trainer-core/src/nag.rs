//! Nesterov accelerated gradient schedules.

/// Learning-rate and momentum schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Initial learning rate η_0.
    pub learning_rate: f64,
    /// Learning-rate decay per step: `η_t = η_0 / (1 + decay · t)`.
    pub decay: f64,
    /// Momentum: `None` for the classic Nesterov sequence `γ_t = (λ_t − 1)/λ_{t+1}` with
    /// `λ_0 = 0`, `λ_{t+1} = (1 + √(1 + 4λ_t²))/2`; `Some(γ)` for a constant.
    pub momentum: Option<f64>,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            learning_rate: 1.0,
            decay: 0.0,
            momentum: Some(0.9),
        }
    }
}

impl Schedule {
    /// η_t.
    pub fn learning_rate(&self, t: usize) -> f64 {
        self.learning_rate / (1.0 + self.decay * t as f64)
    }

    /// γ_t.
    pub fn momentum(&self, t: usize) -> f64 {
        match self.momentum {
            Some(g) => g,
            None => {
                let mut l = 0.0f64;
                let mut next = 1.0f64;
                for _ in 0..=t {
                    l = next;
                    next = (1.0 + libm::sqrt(1.0 + 4.0 * l * l)) / 2.0;
                }
                (l - 1.0) / next
            }
        }
    }
}
