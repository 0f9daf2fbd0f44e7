//! Synthetic submission traffic: senders picked uniformly or by a Zipf law, messages of a
//! fixed number of recipients (one policy request per recipient, sharing `instance`), a share
//! of external recipients. Seeded, so a run can be repeated exactly.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Zipf};
use std::fmt::Write;

/// How senders are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    /// Every sender equally often.
    Uniform,
    /// Zipf with exponent 1: sender k is picked in proportion to 1/k (a few heavy senders).
    Zipf,
}

/// The accepted domain of generated traffic (internal recipients and senders).
pub const INTERNAL_DOMAIN: &str = "contoso.com";

/// A seeded stream of policy requests.
pub struct Traffic {
    rng: StdRng,
    senders: u64,
    zipf: Option<Zipf<f64>>,
    recipients_per_message: u32,
    external_share: f64,
    sender: u64,
    left_in_message: u32,
    message: u64,
}

impl Traffic {
    /// A stream with these parameters.
    pub fn new(
        seed: u64,
        senders: u64,
        distribution: Distribution,
        recipients_per_message: u32,
        external_share: f64,
    ) -> Self {
        let senders = senders.max(1);
        Traffic {
            rng: StdRng::seed_from_u64(seed),
            senders,
            zipf: (distribution == Distribution::Zipf)
                .then(|| Zipf::new(senders as f64, 1.0).expect("n >= 1 and s = 1 are valid")),
            recipients_per_message: recipients_per_message.max(1),
            external_share,
            sender: 0,
            left_in_message: 0,
            message: 0,
        }
    }

    /// Write the next request (RCPT stage, with the blank line) into `out`.
    pub fn next_request(&mut self, connection: usize, out: &mut String) {
        if self.left_in_message == 0 {
            self.sender = match &self.zipf {
                Some(zipf) => zipf.sample(&mut self.rng) as u64 - 1,
                None => self.rng.random_range(0..self.senders),
            };
            self.left_in_message = self.recipients_per_message;
            self.message += 1;
        }
        self.left_in_message -= 1;
        let external = self.rng.random_bool(self.external_share);
        let recipient_domain = if external {
            "fabrikam.example"
        } else {
            INTERNAL_DOMAIN
        };
        let recipient: u32 = self.rng.random_range(0..100_000);
        out.clear();
        let _ = write!(
            out,
            "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n\
             client_address=192.0.2.{}\nhelo_name=client.example\n\
             sasl_method=PLAIN\nsasl_username=user{sender}@{INTERNAL_DOMAIN}\n\
             sender=user{sender}@{INTERNAL_DOMAIN}\nrecipient=r{recipient}@{recipient_domain}\n\
             instance={connection:x}.{:x}\nsize=4096\n\n",
            connection % 250 + 1,
            self.message,
            sender = self.sender,
        );
    }
}
