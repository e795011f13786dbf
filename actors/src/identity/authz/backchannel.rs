//! OpenID Connect Back-Channel Logout 1.0 §2.5, the sending side: each logout token is posted
//! (`application/x-www-form-urlencoded`, `logout_token=...`) to its client's
//! `backchannel_logout_uri` over TLS 1.3, off the actor, a few times with backoff until the
//! client answers 2xx. A client that cannot be reached is logged and counted (never the token);
//! the logout itself does not wait for it.

use std::time::Duration;

use cryptoutil_federation::{HttpsClient, Method};

use super::flow::LogoutNotice;

/// Attempts per notice.
const ATTEMPTS: u32 = 3;
/// How long one attempt may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Posts every notice on its own task.
pub(super) fn deliver(client: Option<&HttpsClient>, notices: Vec<LogoutNotice>) {
    let Some(client) = client else {
        return;
    };
    for notice in notices {
        let client = client.clone().with_timeout(TIMEOUT);
        tokio::spawn(async move { post(&client, &notice).await });
    }
}

async fn post(client: &HttpsClient, notice: &LogoutNotice) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", &notice.token)
        .finish();
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
        match client
            .send(
                Method::POST,
                &notice.uri,
                &headers,
                body.clone().into_bytes().into(),
            )
            .await
        {
            Ok(r) if r.status.is_success() => {
                crate::metrics::backchannel_logout("delivered");
                return;
            }
            Ok(r) => last = format!("answered {}", r.status),
            Err(e) => last = e.to_string(),
        }
    }
    crate::metrics::backchannel_logout("failed");
    tracing::warn!(client = %notice.client_id, uri = %notice.uri, error = %last,
        "back-channel logout not delivered");
}
