//! Soak load (`scripts/soak`): mixed load on a running suite for `--minutes`, reporting every
//! minute the suite process's resident memory and open file descriptors (from `/proc/<pid>`),
//! the requests made, the errors and the p99 latency of each kind of request; at the end,
//! whether memory and descriptors stayed flat after the warm-up.
//!
//! The mix, from `--concurrency` workers: KMS encrypt and decrypt (one elastic key), JOSE sign
//! (one tenant key), client-credentials tokens, introspection of a token; and from one more
//! worker, whole password sign-ins through identity-idp's pages, one every
//! `--signin-interval-ms` (each costs a PBKDF2 of 600,000 iterations).
//!
//! `soak --pid PID --kms URL --jose URL --authz URL --idp URL --ca-file PEM --client-id ID
//!  --client-secret S [--minutes 30] [--warmup 5] [--concurrency 6] [--signin-interval-ms 500]`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use cryptoutil_federation::HttpsClient;
use cryptoutil_tests::bench::{fail, Fallible, Load};
use cryptoutil_tests::browser::{api, sign_in_client, signed_in, Browser, Site, PASSWORD};
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

/// What one minute saw, per kind of request: latencies and errors.
#[derive(Default)]
struct Minute {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: BTreeMap<&'static str, usize>,
    first_error: Option<String>,
}

impl Minute {
    fn record(&mut self, op: &'static str, took: Duration, result: &Fallible<()>) {
        self.latencies.entry(op).or_default().push(took);
        if let Err(e) = result {
            *self.errors.entry(op).or_default() += 1;
            self.first_error.get_or_insert_with(|| format!("{op}: {e}"));
        }
    }
}

/// Everything the workers share.
struct Soak {
    client: HttpsClient,
    kms: String,
    jose: String,
    authz: String,
    basic: String,
    token: Mutex<String>,
    key_id: String,
    kid: String,
    minute: Mutex<Minute>,
    stop: AtomicBool,
}

impl Soak {
    fn bearer(&self) -> String {
        format!(
            "Bearer {}",
            self.token.lock().unwrap_or_else(|e| e.into_inner())
        )
    }

    async fn json(&self, url: &str, auth: &str, body: Value) -> Fallible<Value> {
        let r = self
            .client
            .send(
                Method::POST,
                url,
                &[
                    ("authorization", auth),
                    ("content-type", "application/json"),
                ],
                body.to_string().into(),
            )
            .await?;
        if !r.status.is_success() {
            return Err(fail(format!("{url}: {}", r.status)));
        }
        Ok(serde_json::from_slice(&r.body)?)
    }

    async fn token(&self) -> Fallible<String> {
        let r = self
            .client
            .send(
                Method::POST,
                &format!("{}/service/oauth2/v1/token", self.authz),
                &[
                    ("authorization", &self.basic),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                "grant_type=client_credentials&scope=kms%20jose%20identity"
                    .as_bytes()
                    .to_vec()
                    .into(),
            )
            .await?;
        if !r.status.is_success() {
            return Err(fail(format!("token: {}", r.status)));
        }
        let v: Value = serde_json::from_slice(&r.body)?;
        v.get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| fail("token: no access_token"))
    }

    async fn kms(&self, i: usize) -> Fallible<()> {
        let auth = self.bearer();
        let base = format!("{}/service/api/v1/elastickeys/{}", self.kms, self.key_id);
        let plaintext =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("soak plaintext {i}"));
        let v = self
            .json(
                &format!("{base}/encrypt"),
                &auth,
                json!({ "plaintext": plaintext }),
            )
            .await?;
        let jwe = v
            .get("jwe")
            .cloned()
            .ok_or_else(|| fail("encrypt: no jwe"))?;
        let v = self
            .json(&format!("{base}/decrypt"), &auth, json!({ "jwe": jwe }))
            .await?;
        if v.get("plaintext").and_then(Value::as_str) != Some(plaintext.as_str()) {
            return Err(fail("decrypt: not the plaintext"));
        }
        Ok(())
    }

    async fn jose(&self) -> Fallible<()> {
        let v = self
            .json(
                &format!("{}/service/api/v1/jose/jws/sign", self.jose),
                &self.bearer(),
                json!({ "kid": self.kid, "payload": "c29haw" }),
            )
            .await?;
        v.get("jws").map(|_| ()).ok_or_else(|| fail("sign: no jws"))
    }

    async fn introspect(&self) -> Fallible<()> {
        let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let r = self
            .client
            .send(
                Method::POST,
                &format!("{}/service/oauth2/v1/introspect", self.authz),
                &[
                    ("authorization", &self.basic),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                format!("token={token}").into_bytes().into(),
            )
            .await?;
        let v: Value = serde_json::from_slice(&r.body)?;
        if v.get("active") != Some(&Value::Bool(true)) {
            return Err(fail(format!("introspect: {} {v}", r.status)));
        }
        Ok(())
    }
}

/// `VmRSS` of `pid` in KiB and its open descriptors.
fn process(pid: u32) -> Fallible<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| fail("no VmRSS"))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok((rss, fds))
}

fn p99(latencies: &mut [Duration]) -> f64 {
    latencies.sort();
    let i = (latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1));
    latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> Fallible<()> {
    let load = Load::parse()?;
    let args = &load.args;
    let pid: u32 = args.get("pid")?.parse()?;
    let minutes = args.number("minutes", 30)?;
    let warmup = args.number("warmup", 5)?;
    let concurrency = args.number("concurrency", 6)?;
    let signin_every = Duration::from_millis(args.number("signin-interval-ms", 500)? as u64);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            args.get("client-id")?,
            args.get("client-secret")?
        ))
    );
    let mut soak = Soak {
        client: load.client.clone(),
        kms: args.get("kms")?.to_owned(),
        jose: args.get("jose")?.to_owned(),
        authz: args.get("authz")?.to_owned(),
        basic,
        token: Mutex::default(),
        key_id: String::new(),
        kid: String::new(),
        minute: Mutex::default(),
        stop: AtomicBool::new(false),
    };
    let token = soak.token().await?;
    *soak.token.lock().unwrap_or_else(|e| e.into_inner()) = token.clone();
    let made = api(
        &soak.client,
        &token,
        Method::POST,
        &format!("{}/service/api/v1/elastickeys", soak.kms),
        json!({"name": "soak", "algorithm": "A256GCM"}),
    )
    .await?;
    soak.key_id = made
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let made = api(
        &soak.client,
        &token,
        Method::POST,
        &format!("{}/service/api/v1/jose/jwks", soak.jose),
        json!({"alg": "ES256"}),
    )
    .await?;
    soak.kid = made
        .get("kid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let site = Arc::new(Site {
        client: load.client.clone(),
        authz: soak.authz.clone(),
        idp: args.get("idp")?.to_owned(),
        client_id: sign_in_client(&load.client, &soak.authz, &token).await?,
    });
    api(
        &soak.client,
        &token,
        Method::POST,
        &format!("{}/service/api/v1/identity/users", soak.authz),
        json!({"username": "soak", "password": PASSWORD}),
    )
    .await?;
    let soak = Arc::new(soak);

    let mut workers = Vec::new();
    for w in 0..concurrency {
        let soak = Arc::clone(&soak);
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while !soak.stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (op, result) = match i % 8 {
                    0..=2 => ("kms encrypt+decrypt", soak.kms(i).await),
                    3 | 4 => ("jose sign", soak.jose().await),
                    5 => (
                        "token",
                        match soak.token().await {
                            Ok(token) => {
                                *soak.token.lock().unwrap_or_else(|e| e.into_inner()) = token;
                                Ok(())
                            }
                            Err(e) => Err(e),
                        },
                    ),
                    _ => ("introspect", soak.introspect().await),
                };
                let took = t.elapsed();
                soak.minute
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(op, took, &result);
                i += concurrency;
            }
        }));
    }
    {
        let (soak, site) = (Arc::clone(&soak), Arc::clone(&site));
        workers.push(tokio::spawn(async move {
            while !soak.stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let mut browser = Browser::new(&site);
                let result = match browser.password("soak").await {
                    Ok(r) => signed_in(&r),
                    Err(e) => Err(e),
                };
                soak.minute
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record("sign-in", t.elapsed(), &result);
                tokio::time::sleep(signin_every.saturating_sub(t.elapsed())).await;
            }
        }));
    }

    println!(
        "minute  rss_mib  fds  requests  errors  p99_ms: kms encrypt+decrypt / jose sign / token / introspect / sign-in"
    );
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut total_errors = 0;
    let mut first_error = None;
    for m in 1..=minutes {
        tokio::time::sleep_until(start + Duration::from_secs(60 * m as u64)).await;
        let minute = std::mem::take(&mut *soak.minute.lock().unwrap_or_else(|e| e.into_inner()));
        let (rss, fds) = process(pid)?;
        let requests: usize = minute.latencies.values().map(Vec::len).sum();
        let errors: usize = minute.errors.values().sum();
        total_errors += errors;
        if first_error.is_none() {
            first_error = minute.first_error.clone();
        }
        let mut latencies = minute.latencies;
        let p99s: Vec<String> = [
            "kms encrypt+decrypt",
            "jose sign",
            "token",
            "introspect",
            "sign-in",
        ]
        .iter()
        .map(|op| {
            format!(
                "{:.1}",
                latencies.get_mut(op).map_or(0.0, |l| p99(l.as_mut_slice()))
            )
        })
        .collect();
        println!(
            "{m:>6}  {:>7.1}  {fds:>3}  {requests:>8}  {errors:>6}  {}",
            rss as f64 / 1024.0,
            p99s.join(" / ")
        );
        samples.push((rss, fds));
    }
    soak.stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    if let Some(e) = &first_error {
        println!("first error: {e}");
    }
    // Flat after the warm-up: the last minute's memory within 10 % (+16 MiB) and its
    // descriptors within 32 of the warm-up's end, and nothing higher in between than either
    // allows.
    let base = samples
        .get(warmup.saturating_sub(1))
        .copied()
        .ok_or_else(|| fail("shorter than the warm-up"))?;
    let rss_bound = base.0 + base.0 / 10 + 16 * 1024;
    let fd_bound = base.1 + 32;
    let after: Vec<_> = samples.iter().skip(warmup).collect();
    let rss_flat = after.iter().all(|(rss, _)| *rss <= rss_bound);
    let fds_flat = after.iter().all(|(_, fds)| *fds <= fd_bound);
    println!(
        "after the {warmup}-minute warm-up: rss {:.1} MiB -> {:.1} MiB (bound {:.1}), fds {} -> {} (bound {}), errors {total_errors}",
        base.0 as f64 / 1024.0,
        samples.last().map_or(0.0, |s| s.0 as f64 / 1024.0),
        rss_bound as f64 / 1024.0,
        base.1,
        samples.last().map_or(0, |s| s.1),
        fd_bound
    );
    if !rss_flat || !fds_flat || total_errors > 0 {
        return Err(fail(format!(
            "not flat or not clean: memory flat {rss_flat}, descriptors flat {fds_flat}, errors {total_errors}"
        )));
    }
    println!("flat: memory and descriptors stayed within their bounds, no errors");
    Ok(())
}
