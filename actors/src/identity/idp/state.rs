//! The `Idp` actor's state: sign-in sessions and the failure counters behind lockout, pure
//! (tested without spawning). Sessions and counters live in memory with TTLs and bounds: a
//! restart signs everyone out. When replicas share the store, every change is also journaled
//! there ([`crate::journal`]) and read from there first ([`shared`]), so a session opened
//! through one replica serves on another and every replica counts a name's failures.

use std::collections::HashMap;
use std::time::Duration;

use cryptoutil_protocols::oauth;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::journal::{decode_some, digest_in, mirror, Journal};
use cryptoutil_storage::Table;

use super::factors::password;
use crate::error::{Error, Unavailability};
use crate::identity::signin::{Credential, Subject};

/// Failed sign-ins allowed before backoff starts.
const FREE_FAILURES: u32 = 5;
/// The first lockout, once the free failures are spent; it doubles with every further failure.
const FIRST_LOCKOUT: u64 = 30;
/// Longest lockout after repeated failures.
const MAX_LOCKOUT: u64 = 900;
/// Failures older than this are forgotten.
const FAILURE_MEMORY: u64 = 900;
/// Bounds of the in-memory maps (past them, expired entries are dropped; if still full the
/// request is refused rather than memory grown).
const MAX_ENTRIES: usize = 100_000;

/// The message for a wrong username or password: the same for an unknown user.
pub const LOGIN_FAILED: &str = "The username or password is incorrect.";
/// The message while a name is locked: the same for names that exist and names that do not.
pub const LOGIN_LOCKED: &str =
    "Too many failed attempts for this username. Wait a few minutes and try again.";

#[derive(Serialize, Deserialize)]
struct Session {
    subject: Subject,
    expires: u64,
}

/// How long a sign-in waits for its next factor once the password passed.
pub const STEP_TTL: u64 = 300;
/// Codes one waiting sign-in may be given before the password must be given again (fewer
/// than the name's free failures: a stolen password buys this many guesses, then a lockout
/// that grows).
pub const STEP_ATTEMPTS: u32 = 3;

/// How long a WebAuthn ceremony's challenge stays valid.
pub const CEREMONY_TTL: u64 = 300;
/// Most WebAuthn ceremonies kept at once (past it, the oldest is dropped).
const MAX_CEREMONIES: usize = 20_000;

/// A WebAuthn ceremony started by a page: its challenge (used once), what it is bound to
/// (the pending request, or the kind of registration), until when.
#[derive(Serialize, Deserialize)]
struct Ceremony {
    challenge: Vec<u8>,
    bind: String,
    expires: u64,
}

/// A waiting sign-in's user and what they passed so far (`amr`).
pub type Waiting = (Credential, Vec<String>);

/// A sign-in whose password passed, waiting for its next factor (its token is a cookie of the
/// browser that gave the password; only its digest is kept).
#[derive(Serialize, Deserialize)]
struct Step {
    user: Credential,
    challenge: String,
    amr: Vec<String>,
    expires: u64,
    attempts: u32,
    /// A step up keeps the session's `sid` (a logout by it ends the stepped-up session too).
    sid: Option<String>,
}

#[derive(Default)]
struct Failures {
    count: u32,
    last: u64,
    locked_until: u64,
}

/// Before a factor runs: refused now, or the record to check a user without one against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The name is locked out (whether it exists or not).
    Locked,
    /// Go on; an unknown user is checked against this dummy record.
    Proceed {
        /// A record nothing matches.
        dummy: String,
    },
}

/// What a code for a waiting sign-in may do.
pub enum Attempt {
    /// Be checked, for this user.
    Check(Box<Credential>),
    /// Nothing: the sign-in is gone (expired, its attempts spent, another request's).
    Gone,
    /// Nothing: the name (of this user) is locked out.
    Locked(Box<Credential>),
}

/// A new sign-in session.
pub struct Opened {
    /// The cookie value (shown once; only its digest is kept).
    pub cookie: Zeroizing<String>,
    /// Who signed in.
    pub subject: Subject,
    /// The cookie's lifetime, in seconds.
    pub max_age: u64,
}

/// Sessions and failure counters.
pub struct IdpState {
    sessions: HashMap<[u8; 32], Session>,
    steps: HashMap<[u8; 32], Step>,
    ceremonies: HashMap<[u8; 32], Ceremony>,
    failures: HashMap<(String, String), Failures>,
    dummy: String,
    session_ttl: u64,
    /// Shared store: the failure records of each name read before deciding (a success
    /// deletes them).
    failure_records: HashMap<(String, String), Vec<String>>,
    /// Shared store: the writes of the decision being made.
    pub(super) journal: Journal,
}

impl std::fmt::Debug for IdpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpState")
            .field("sessions", &self.sessions.len())
            .field("failures", &self.failures.len())
            .finish_non_exhaustive()
    }
}

/// Drops expired entries when `map` is full; false if it is still full.
fn room<K, V>(map: &mut HashMap<K, V>, live: impl Fn(&V) -> bool) -> bool {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, v| live(v));
    }
    map.len() < MAX_ENTRIES
}

fn failure_key(tenant: &str, username: &str) -> (String, String) {
    (tenant.to_owned(), username.to_ascii_lowercase())
}

/// Until when `count` failures, the last at `last`, lock the name: five are free, then each
/// locks it for twice as long as the one before (30 s up to 15 min).
fn locked_until(count: u32, last: u64) -> u64 {
    if count < FREE_FAILURES {
        return 0;
    }
    let doublings = (count - FREE_FAILURES).min(10);
    last + (FIRST_LOCKOUT << doublings).min(MAX_LOCKOUT)
}

// The keys of the records replicas of a shared store keep in `identity_flow_v1`
// (see [`super::shared`]).

pub(super) fn session_key(digest: &[u8; 32]) -> String {
    format!(
        "session/{}",
        cryptoutil_protocols::jose::b64::encode(digest)
    )
}

pub(super) fn step_key(digest: &[u8; 32]) -> String {
    format!("step/{}", cryptoutil_protocols::jose::b64::encode(digest))
}

/// The claim of a waiting sign-in's `n`th attempt (created: each attempt is spent once).
pub(super) fn tried_key(digest: &[u8; 32], n: u32) -> String {
    format!(
        "tried/{}/{n}",
        cryptoutil_protocols::jose::b64::encode(digest)
    )
}

pub(super) fn finished_key(digest: &[u8; 32]) -> String {
    format!(
        "finished/{}",
        cryptoutil_protocols::jose::b64::encode(digest)
    )
}

pub(super) fn ceremony_key(digest: &[u8; 32]) -> String {
    format!(
        "ceremony/{}",
        cryptoutil_protocols::jose::b64::encode(digest)
    )
}

pub(super) fn taken_key(challenge: &[u8]) -> String {
    format!(
        "taken/{}",
        cryptoutil_protocols::jose::b64::encode(&oauth::token_digest(challenge))
    )
}

pub(super) fn failures_prefix(tenant: &str, username: &str) -> String {
    let name = format!("{tenant}\n{}", username.to_ascii_lowercase());
    format!(
        "failure/{}/",
        cryptoutil_protocols::jose::b64::encode(&oauth::token_digest(name.as_bytes()))
    )
}

/// A new failure record of `tenant`/`username` at `now`.
pub(super) fn failure_record_key(tenant: &str, username: &str, now: u64) -> String {
    let mut nonce = [0u8; 6];
    // A clash of two failures in one second on one name would only count them once.
    let _ = oauth::fill_random(&mut nonce);
    format!(
        "{}{now:020}-{}",
        failures_prefix(tenant, username),
        cryptoutil_protocols::jose::b64::encode(&nonce)
    )
}

impl IdpState {
    /// Blocking (the password factor's dummy record is one PBKDF2 run).
    pub fn new(session_ttl: Duration) -> Result<Self, Error> {
        Ok(Self::with_dummy(session_ttl, password::dummy_record()?))
    }

    /// With a given dummy record (tests).
    pub fn with_dummy(session_ttl: Duration, dummy: String) -> Self {
        Self {
            sessions: HashMap::new(),
            steps: HashMap::new(),
            ceremonies: HashMap::new(),
            failures: HashMap::new(),
            dummy,
            session_ttl: session_ttl.as_secs(),
            failure_records: HashMap::new(),
            journal: Journal::off(),
        }
    }

    /// Who the sign-in session `cookie` stands for, while it lasts.
    pub fn session(&self, cookie: &str, now: u64) -> Option<Subject> {
        self.sessions
            .get(&oauth::token_digest(cookie.as_bytes()))
            .filter(|s| s.expires > now)
            .map(|s| s.subject.clone())
    }

    /// Forgets the session `cookie` (its subject no longer stands).
    pub fn end(&mut self, cookie: &str) {
        let digest = oauth::token_digest(cookie.as_bytes());
        self.sessions.remove(&digest);
        self.journal.forget(&session_key(&digest));
    }

    /// Before checking a factor: refused while the name is locked out (names that exist and
    /// names that do not alike).
    pub fn check(&self, tenant: &str, username: &str, now: u64) -> Check {
        let locked = self
            .failures
            .get(&failure_key(tenant, username))
            .is_some_and(|f| f.locked_until > now);
        if locked {
            Check::Locked
        } else {
            Check::Proceed {
                dummy: self.dummy.clone(),
            }
        }
    }

    /// A failed sign-in, counted against the name: five are free, then each locks the name
    /// out for twice as long as the last (30 s up to 15 min). The message to show.
    pub fn failed(&mut self, tenant: &str, username: &str, now: u64) -> &'static str {
        if !room(&mut self.failures, |f| now < f.last + FAILURE_MEMORY) {
            return LOGIN_LOCKED;
        }
        let f = self
            .failures
            .entry(failure_key(tenant, username))
            .or_default();
        if now >= f.last + FAILURE_MEMORY {
            *f = Failures::default();
        }
        f.count += 1;
        f.last = now;
        f.locked_until = locked_until(f.count, now);
        tracing::info!(%tenant, failures = f.count, "sign-in failed");
        if self.journal.is_on() {
            // One record per failure: replicas counting at once lose none.
            let key = failure_record_key(tenant, username, now);
            self.journal.keep(&key, now + FAILURE_MEMORY, &now, false);
            self.failure_records
                .entry(failure_key(tenant, username))
                .or_default()
                .push(key);
        }
        LOGIN_FAILED
    }

    /// One use of something rationed per name (a magic link mailed to an address), checked
    /// and counted in one step: whether it may go ahead (five at once, then the backoff).
    pub fn ration(&mut self, tenant: &str, name: &str, now: u64) -> bool {
        self.check(tenant, name, now) != Check::Locked
            && self.failed(tenant, name, now) != LOGIN_LOCKED
    }

    /// `user` passed their password for the pending request `challenge` and has another
    /// factor to give: the sign-in waits for it. The token that names it (a cookie).
    pub fn begin(
        &mut self,
        user: &Credential,
        challenge: &str,
        amr: Vec<String>,
        sid: Option<String>,
        now: u64,
    ) -> Result<Zeroizing<String>, Error> {
        if !room(&mut self.steps, |s| s.expires > now) {
            return Err(Error::Unavailable {
                actor: "Idp",
                why: Unavailability::Timeout,
            });
        }
        let token = oauth::random_token(32).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        let mut user = user.clone();
        user.password_hash = String::new();
        let digest = oauth::token_digest(token.as_bytes());
        let step = Step {
            user,
            challenge: challenge.to_owned(),
            amr,
            expires: now + STEP_TTL,
            attempts: 0,
            sid,
        };
        self.journal
            .keep(&step_key(&digest), step.expires, &step, false);
        self.steps.insert(digest, step);
        Ok(token)
    }

    /// The user of the waiting sign-in `token` for `challenge` and what they passed so far
    /// (its `amr`); nothing is spent.
    pub fn waiting(&self, token: &str, challenge: &str, now: u64) -> Option<Waiting> {
        self.steps
            .get(&oauth::token_digest(token.as_bytes()))
            .filter(|s| s.expires > now && s.challenge == challenge)
            .map(|s| (s.user.clone(), s.amr.clone()))
    }

    /// A new WebAuthn challenge for the ceremony `key` (a page's token or cookie, with what it
    /// is for), bound to `bind`; it replaces one started before under the same key.
    pub fn ceremony(&mut self, key: &str, bind: &str, now: u64) -> Result<Vec<u8>, Error> {
        if self.ceremonies.len() >= MAX_CEREMONIES {
            self.ceremonies.retain(|_, c| c.expires > now);
        }
        if self.ceremonies.len() >= MAX_CEREMONIES {
            // Anyone may start a passkey ceremony: a flood evicts the oldest (whose browsers
            // start again) rather than refusing every new one.
            let oldest = self
                .ceremonies
                .iter()
                .min_by_key(|(_, c)| c.expires)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.ceremonies.remove(&oldest);
                self.journal.forget(&ceremony_key(&oldest));
            }
        }
        let mut challenge = vec![0u8; 32];
        oauth::fill_random(&mut challenge).map_err(|_| Error::Internal {
            what: "random generator",
        })?;
        let digest = oauth::token_digest(key.as_bytes());
        let ceremony = Ceremony {
            challenge: challenge.clone(),
            bind: bind.to_owned(),
            expires: now + CEREMONY_TTL,
        };
        self.journal
            .keep(&ceremony_key(&digest), ceremony.expires, &ceremony, false);
        self.ceremonies.insert(digest, ceremony);
        Ok(challenge)
    }

    /// The challenge of the ceremony `key` bound to `bind`, once: taken whether or not what
    /// answers it verifies.
    pub fn take_ceremony(&mut self, key: &str, bind: &str, now: u64) -> Option<Vec<u8>> {
        let digest = oauth::token_digest(key.as_bytes());
        let taken = self.ceremonies.remove(&digest);
        self.journal.forget(&ceremony_key(&digest));
        let taken = taken.filter(|c| c.expires > now && c.bind == bind)?;
        // Created: of two replicas taking one challenge at once, one fails.
        self.journal
            .keep(&taken_key(&taken.challenge), taken.expires, &(), true);
        Some(taken.challenge)
    }

    /// A code is about to be checked for the waiting sign-in `token` of `challenge`: the
    /// attempt is spent and counted against the name as a failure *before* the check (a
    /// success forgets the failures), so codes sent at once are each counted. The user, or
    /// why not: gone (expired, its attempts spent, another request's) or locked.
    pub fn attempt(&mut self, token: &str, challenge: &str, now: u64) -> Attempt {
        let digest = oauth::token_digest(token.as_bytes());
        let Some(step) = self
            .steps
            .get_mut(&digest)
            .filter(|s| s.expires > now && s.challenge == challenge)
        else {
            return Attempt::Gone;
        };
        step.attempts += 1;
        let spent = step.attempts > STEP_ATTEMPTS;
        let user = step.user.clone();
        if spent {
            self.steps.remove(&digest);
            self.journal.forget(&step_key(&digest));
            return Attempt::Gone;
        }
        let expires = step.expires;
        self.journal
            .keep(&step_key(&digest), expires, &*step, false);
        // Replicas (and requests read before this one was written) agree on the count: of two
        // decisions spending the same attempt, one transaction fails and decides again.
        self.journal
            .keep(&tried_key(&digest, step.attempts), expires, &(), true);
        if self.check(&user.tenant, &user.username, now) == Check::Locked {
            return Attempt::Locked(Box::new(user));
        }
        self.failed(&user.tenant, &user.username, now);
        Attempt::Check(Box::new(user))
    }

    /// The waiting sign-in `token` for `challenge` passed its next factor (`amr`): it ends
    /// and a session opens, its `amr` the password's, the factor's and `mfa`.
    pub fn finish(
        &mut self,
        token: &str,
        challenge: &str,
        amr: &str,
        now: u64,
    ) -> Result<Opened, Error> {
        let digest = oauth::token_digest(token.as_bytes());
        let step = self
            .steps
            .remove(&digest)
            .filter(|s| s.expires > now && s.challenge == challenge)
            .ok_or(Error::NotFound {
                what: "sign-in request",
            })?;
        self.journal.forget(&step_key(&digest));
        // Created: a step finishes once, whichever replica sees its factor first.
        self.journal
            .keep(&finished_key(&digest), step.expires, &(), true);
        let mut all = step.amr;
        for value in [amr, "mfa"] {
            if !all.iter().any(|a| a == value) {
                all.push(value.to_owned());
            }
        }
        self.open_session(&step.user, all, step.sid, now)
    }

    /// `user` passed their factors (`amr`): their failures are forgotten and a session opens.
    pub fn open(&mut self, user: &Credential, amr: Vec<String>, now: u64) -> Result<Opened, Error> {
        self.open_session(user, amr, None, now)
    }

    /// A session for `user` with `amr`, under `sid` when a step up keeps its session's.
    fn open_session(
        &mut self,
        user: &Credential,
        amr: Vec<String>,
        sid: Option<String>,
        now: u64,
    ) -> Result<Opened, Error> {
        let name = failure_key(&user.tenant, &user.username);
        self.failures.remove(&name);
        for key in self.failure_records.remove(&name).unwrap_or_default() {
            self.journal.forget(&key);
        }
        if !room(&mut self.sessions, |s| s.expires > now) {
            return Err(Error::Unavailable {
                actor: "Idp",
                why: Unavailability::Timeout,
            });
        }
        let random = |n| {
            oauth::random_token(n).map_err(|_| Error::Internal {
                what: "random generator",
            })
        };
        let cookie = random(32)?;
        let sid = match sid {
            Some(sid) => sid,
            None => random(16)?.to_string(),
        };
        let subject = Subject {
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            tenant: user.tenant.clone(),
            roles: user.roles.clone(),
            auth_time: now,
            sid,
            amr,
        };
        let digest = oauth::token_digest(cookie.as_bytes());
        let session = Session {
            subject: subject.clone(),
            expires: now + self.session_ttl,
        };
        self.journal
            .keep(&session_key(&digest), session.expires, &session, false);
        self.sessions.insert(digest, session);
        Ok(Opened {
            cookie,
            subject,
            max_age: self.session_ttl,
        })
    }

    /// Sets or removes the session, waiting sign-in or ceremony `key` names as the shared
    /// store holds it (`plain`).
    pub(super) fn mirror(&mut self, key: &str, plain: Option<&[u8]>) -> Result<(), Error> {
        const T: Table = Table::IdentityFlow;
        if let Some(d) = key.strip_prefix("session/") {
            let v = decode_some(T, key, plain, "session")?;
            mirror(&mut self.sessions, digest_in(T, key, d)?, v);
        } else if let Some(d) = key.strip_prefix("step/") {
            let v = decode_some(T, key, plain, "waiting sign-in")?;
            mirror(&mut self.steps, digest_in(T, key, d)?, v);
        } else if let Some(d) = key.strip_prefix("ceremony/") {
            let v = decode_some(T, key, plain, "ceremony")?;
            mirror(&mut self.ceremonies, digest_in(T, key, d)?, v);
        }
        Ok(())
    }

    /// The failures of `name` (tenant, username) are the shared store's `records` (key, time)
    /// of the last [`FAILURE_MEMORY`] seconds.
    pub(super) fn mirror_failures(
        &mut self,
        name: (String, String),
        records: Vec<(String, u64)>,
        now: u64,
    ) {
        let name = failure_key(&name.0, &name.1);
        let live: Vec<(String, u64)> = records
            .into_iter()
            .filter(|(_, at)| now < at + FAILURE_MEMORY)
            .collect();
        let last = live.iter().map(|(_, at)| *at).max().unwrap_or_default();
        let count = u32::try_from(live.len()).unwrap_or(u32::MAX);
        let failures = (count > 0).then(|| Failures {
            count,
            last,
            locked_until: locked_until(count, last),
        });
        mirror(&mut self.failures, name.clone(), failures);
        let keys = (count > 0).then(|| live.into_iter().map(|(k, _)| k).collect());
        mirror(&mut self.failure_records, name, keys);
    }

    /// Fault injection.
    #[allow(clippy::panic)]
    pub fn crash(&self) {
        panic!("fault injection: Idp crash requested");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pwd() -> Vec<String> {
        vec!["pwd".into()]
    }

    #[test]
    fn a_waiting_sign_in_ends_with_its_factor_or_after_three_codes() {
        let mut st = IdpState::with_dummy(Duration::from_secs(60), "dummy".into());
        let token = st.begin(&user("alice"), "ch-1", pwd(), None, 1000).unwrap();
        // Bound to its request, alive for five minutes.
        assert!(matches!(st.attempt(&token, "ch-2", 1000), Attempt::Gone));
        assert!(matches!(
            st.attempt(&token, "ch-1", 1000 + STEP_TTL),
            Attempt::Gone
        ));
        let Attempt::Check(waiting) = st.attempt(&token, "ch-1", 1001) else {
            panic!("a code may be checked")
        };
        assert_eq!(waiting.username, "alice");
        assert!(waiting.password_hash.is_empty(), "no password record kept");
        let opened = st.finish(&token, "ch-1", "otp", 1002).unwrap();
        assert_eq!(opened.subject.amr, vec!["pwd", "otp", "mfa"]);
        assert!(
            matches!(st.attempt(&token, "ch-1", 1002), Attempt::Gone),
            "used once"
        );
        assert!(st.finish(&token, "ch-1", "otp", 1002).is_err());
        // Each attempt is counted before its check: three, then the password again; the
        // name's failures grow with them (a success forgets them).
        let token = st.begin(&user("alice"), "ch-3", pwd(), None, 1000).unwrap();
        for _ in 0..STEP_ATTEMPTS {
            assert!(matches!(
                st.attempt(&token, "ch-3", 1001),
                Attempt::Check(_)
            ));
        }
        assert!(matches!(st.attempt(&token, "ch-3", 1001), Attempt::Gone));
        let token = st.begin(&user("alice"), "ch-4", pwd(), None, 1002).unwrap();
        let mut outcomes = Vec::new();
        for _ in 0..STEP_ATTEMPTS {
            outcomes.push(st.attempt(&token, "ch-4", 1003));
        }
        // Five failures lock the name: the fifth attempt overall was the last checked.
        assert!(matches!(outcomes[0], Attempt::Check(_)));
        assert!(matches!(outcomes[1], Attempt::Check(_)));
        assert!(matches!(outcomes[2], Attempt::Locked(_)));
        assert_eq!(st.check("default", "alice", 1003), Check::Locked);
    }

    fn user(name: &str) -> Credential {
        Credential {
            user_id: format!("user-{name}"),
            username: name.into(),
            tenant: "default".into(),
            roles: vec!["admin".into()],
            password_hash: String::new(),
        }
    }

    #[test]
    fn failures_lock_out_known_and_unknown_names_alike_and_grow() {
        let mut st = IdpState::with_dummy(Duration::from_secs(3600), "dummy".into());
        let now = 1_800_000_000;
        for name in ["admin", "nobody"] {
            for i in 0..5 {
                assert_eq!(
                    st.check("default", name, now + i),
                    Check::Proceed {
                        dummy: "dummy".into()
                    }
                );
                assert_eq!(st.failed("default", name, now + i), LOGIN_FAILED);
            }
            // Five failures: locked for 30 s, whatever the case of the name.
            assert_eq!(
                st.check("default", &name.to_uppercase(), now + 5),
                Check::Locked
            );
        }
        // Still locked after 20 s; after the 30 s backoff the name may try again.
        assert_eq!(st.check("default", "admin", now + 24), Check::Locked);
        assert!(matches!(
            st.check("default", "admin", now + 40),
            Check::Proceed { .. }
        ));
        st.failed("default", "admin", now + 40);
        assert_eq!(
            st.check("default", "admin", now + 95),
            Check::Locked,
            "60 s now"
        );
        // Another tenant's name is another name.
        assert!(matches!(
            st.check("acme", "admin", now + 95),
            Check::Proceed { .. }
        ));
        // A success forgets the failures.
        st.open(&user("admin"), pwd(), now + 101).unwrap();
        assert!(matches!(
            st.check("default", "admin", now + 101),
            Check::Proceed { .. }
        ));
    }

    #[test]
    fn a_ceremony_challenge_is_taken_once_for_what_it_was_bound_to() {
        let mut st = IdpState::with_dummy(Duration::from_secs(60), "dummy".into());
        let c = st.ceremony("passkey:t1", "ch-1", 1000).unwrap();
        assert_eq!(c.len(), 32);
        assert_eq!(st.take_ceremony("passkey:t1", "ch-1", 1001), Some(c));
        assert_eq!(st.take_ceremony("passkey:t1", "ch-1", 1001), None, "once");
        st.ceremony("passkey:t2", "ch-1", 1000).unwrap();
        assert_eq!(st.take_ceremony("passkey:t2", "ch-2", 1001), None, "bound");
        assert_eq!(
            st.take_ceremony("passkey:t2", "ch-1", 1001),
            None,
            "taken anyway"
        );
        st.ceremony("passkey:t3", "ch-1", 1000).unwrap();
        assert_eq!(
            st.take_ceremony("passkey:t3", "ch-1", 1000 + CEREMONY_TTL),
            None
        );
        // A flood of ceremonies evicts the oldest; a new one always starts.
        let first = st.ceremony("passkey:flood-0", "ch-1", 900).unwrap();
        for i in 1..=MAX_CEREMONIES {
            st.ceremony(&format!("passkey:flood-{i}"), "ch-1", 1000)
                .unwrap();
        }
        assert_eq!(
            st.take_ceremony("passkey:flood-0", "ch-1", 1001),
            None,
            "evicted"
        );
        assert_ne!(first.len(), 0);
        assert!(st
            .take_ceremony(&format!("passkey:flood-{MAX_CEREMONIES}"), "ch-1", 1001)
            .is_some());
        let token = st.begin(&user("bob"), "ch-9", pwd(), None, 1000).unwrap();
        assert_eq!(st.waiting(&token, "ch-9", 1001).unwrap().0.username, "bob");
        assert!(st.waiting(&token, "ch-8", 1001).is_none());
    }

    #[test]
    fn sessions_last_their_ttl_and_end_on_request() {
        let mut st = IdpState::with_dummy(Duration::from_secs(60), "dummy".into());
        let opened = st.open(&user("admin"), pwd(), 1000).unwrap();
        assert_eq!(opened.max_age, 60);
        assert_eq!(
            st.session(&opened.cookie, 1059),
            Some(opened.subject.clone())
        );
        assert_eq!(st.session(&opened.cookie, 1060), None, "expired");
        assert_eq!(st.session("another cookie", 1000), None);
        st.end(&opened.cookie);
        assert_eq!(st.session(&opened.cookie, 1001), None, "ended");
        let second = st.open(&user("admin"), pwd(), 1000).unwrap();
        assert_ne!(second.subject.sid, opened.subject.sid);
    }
}
