//! The `IssuerJwks` actor's decisions as plain functions of its state and the time, and the
//! policy for keys an issuer publishes.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use cryptoutil_protocols::jose::jwk::{Curve, KeyMaterial};
use cryptoutil_protocols::jose::{Jwk, JwkSet, JwsAlg};
use tokio::time::Instant;

/// A fetched set and when it arrived.
#[derive(Debug)]
pub struct Published {
    /// The issuer's usable keys, each pinned to one algorithm.
    pub set: Arc<JwkSet>,
    /// When the fetch completed.
    pub fetched_at: Instant,
}

/// Where the actor publishes its set and handles read it; outlives restarts of the actor.
pub type Snapshot = Arc<RwLock<Option<Arc<Published>>>>;

pub(crate) fn read(snapshot: &Snapshot) -> Option<Arc<Published>> {
    snapshot
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

pub(crate) fn publish(snapshot: &Snapshot, set: Arc<JwkSet>, now: Instant) {
    *snapshot.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Published {
        set,
        fetched_at: now,
    }));
}

/// What to do with a refresh request.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<W> {
    /// Start a fetch; the caller waits for it.
    Fetch,
    /// A fetch is running; the caller waits for it.
    Wait,
    /// The last fetch started less than the minimum interval ago: answer this caller now.
    Limited(W),
}

/// Refresh bookkeeping; `W` is whatever a waiting caller is answered through.
#[derive(Debug)]
pub struct IssuerJwksState<W> {
    min_interval: Duration,
    fetching: bool,
    last_attempt: Option<Instant>,
    waiters: Vec<W>,
}

impl<W> IssuerJwksState<W> {
    /// Fetches at most once per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            fetching: false,
            last_attempt: None,
            waiters: Vec::new(),
        }
    }

    /// A caller at `now` wants a fresher set.
    pub fn on_refresh(&mut self, now: Instant, waiter: W) -> Decision<W> {
        if self.fetching {
            self.waiters.push(waiter);
            return Decision::Wait;
        }
        if let Some(last) = self.last_attempt {
            if now.saturating_duration_since(last) < self.min_interval {
                return Decision::Limited(waiter);
            }
        }
        self.fetching = true;
        self.last_attempt = Some(now);
        self.waiters.push(waiter);
        Decision::Fetch
    }

    /// The running fetch ended (either way): everyone who waited for it.
    pub fn on_fetched(&mut self) -> Vec<W> {
        self.fetching = false;
        std::mem::take(&mut self.waiters)
    }

    /// Fault injection.
    #[allow(clippy::panic)]
    pub fn crash(&self) {
        panic!("fault injection: IssuerJwks crash requested");
    }
}

/// An issuer's published set as we use it: keys we cannot use for token signatures (symmetric,
/// encryption-only, ambiguous RSA) are left out rather than failing the whole set, since the
/// issuer may publish keys for other purposes; a set with no usable key is an error.
pub fn parse_issuer_set(json: &str) -> Result<JwkSet, String> {
    let set = JwkSet::parse(json).map_err(|e| e.to_string())?;
    let keys: Vec<Jwk> = set
        .keys
        .into_iter()
        .filter_map(|k| pin_issuer_key(k).ok())
        .collect();
    if keys.is_empty() {
        return Err("the JWK Set holds no usable signing key".into());
    }
    Ok(JwkSet { keys })
}

/// Issuer keys often omit `alg`. EC and OKP keys name one algorithm by their curve; an RSA key
/// without `alg` is ambiguous (RS or PS, which hash) and refused, so no key serves two
/// algorithms. Symmetric keys are refused: a shared HMAC key would let every service mint tokens.
pub fn pin_issuer_key(key: Jwk) -> Result<Jwk, String> {
    if matches!(key.material(), KeyMaterial::Oct { .. }) {
        return Err("symmetric keys cannot be issuer keys".into());
    }
    if key.alg.is_some() {
        let alg = key.jws_alg().map_err(|e| e.to_string())?;
        return key.pinned(alg).map_err(|e| e.to_string());
    }
    let alg = match key.material() {
        KeyMaterial::Ec {
            crv: Curve::P256, ..
        } => JwsAlg::ES256,
        KeyMaterial::Ec {
            crv: Curve::P384, ..
        } => JwsAlg::ES384,
        KeyMaterial::Ec { .. } => JwsAlg::ES512,
        KeyMaterial::Okp { .. } => JwsAlg::EdDSA,
        KeyMaterial::Rsa { .. } => {
            return Err("an RSA key without alg is ambiguous; set alg".into())
        }
        KeyMaterial::Oct { .. } => return Err("symmetric keys cannot be issuer keys".into()),
    };
    key.pinned(alg).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(30);

    #[test]
    fn one_fetch_serves_every_waiter_and_refreshes_are_rate_limited() {
        let t0 = Instant::now();
        let mut st = IssuerJwksState::new(MIN);
        assert_eq!(st.on_refresh(t0, 1), Decision::Fetch);
        assert_eq!(st.on_refresh(t0, 2), Decision::Wait);
        assert_eq!(
            st.on_refresh(t0 + MIN * 2, 3),
            Decision::Wait,
            "a running fetch is joined, not rate limited and not repeated"
        );
        assert_eq!(st.on_fetched(), vec![1, 2, 3]);
        assert!(st.on_fetched().is_empty());
        assert_eq!(st.on_refresh(t0 + MIN / 2, 4), Decision::Limited(4));
        assert_eq!(
            st.on_refresh(t0 + MIN - Duration::from_millis(1), 5),
            Decision::Limited(5)
        );
        assert_eq!(st.on_refresh(t0 + MIN, 6), Decision::Fetch);
        assert_eq!(st.on_fetched(), vec![6]);
    }

    #[test]
    fn issuer_sets_keep_usable_signing_keys_only() {
        let es = Jwk::generate(JwsAlg::ES384).unwrap();
        let mut no_alg = es.to_public_value().unwrap();
        no_alg.as_object_mut().unwrap().remove("alg");
        let hs = Jwk::generate(JwsAlg::HS256)
            .unwrap()
            .to_private_value()
            .unwrap();
        let hs: serde_json::Value = serde_json::from_str(&hs).unwrap();
        let json = serde_json::json!({ "keys": [no_alg, hs] }).to_string();
        let set = parse_issuer_set(&json).unwrap();
        assert_eq!(set.keys.len(), 1, "the HMAC key is left out");
        assert_eq!(
            set.keys[0].jws_alg().unwrap(),
            JwsAlg::ES384,
            "pinned by its curve"
        );
        let only_hs = serde_json::json!({ "keys": [hs] }).to_string();
        assert!(parse_issuer_set(&only_hs)
            .unwrap_err()
            .contains("no usable"));
        assert!(parse_issuer_set("{\"keys\": 3}").is_err());
    }
}
