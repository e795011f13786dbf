//! The browser UIs (JOSE, KMS, CA): served publicly under /browser/ui/<name>/ with the /browser
//! security headers, written so the strict CSP lets them run (no inline script, style or
//! handlers, only same-origin assets), and calling only API routes that exist under
//! /browser/api/v1.

use cryptoutil_actors::ServiceName;
use cryptoutil_http::auth::Realm;
use cryptoutil_http::routes;

use crate::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn the_jose_ui_is_served_csp_clean_and_calls_only_existing_routes() {
    ui_is_csp_clean(ServiceName::Jose, "jose", "/browser/api/v1/jose", 6).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kms_ui_is_served_csp_clean_and_calls_only_existing_routes() {
    ui_is_csp_clean(ServiceName::Kms, "kms", "/browser/api/v1", 12).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ca_ui_is_served_csp_clean_and_calls_only_existing_routes() {
    ui_is_csp_clean(ServiceName::Ca, "ca", "/browser/api/v1", 8).await;
}

/// Does a route path with `{param}` segments match `path`, whose `{}` segments stand for any
/// value?
fn route_matches(route: &str, path: &str) -> bool {
    let (r, p): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    r.len() == p.len()
        && r.iter().zip(&p).all(|(r, p)| {
            r == p || (r.starts_with('{') && r.ends_with('}') && (p == &"{}" || !p.is_empty()))
        })
}

async fn ui_is_csp_clean(service: ServiceName, name: &str, api_base: &str, min_calls: usize) {
    let app = TestApp::start(vec![service], &[], None).await;
    let base = format!("{}/browser/ui/{name}/", app.public(service));
    let common = app
        .client
        .get(&format!("{}/browser/ui/common.js", app.public(service)))
        .await
        .unwrap();
    assert_eq!(common.status, 200);
    assert!(!common.text().contains("eval(") && !common.text().contains("new Function"));
    let mut bodies = Vec::new();
    for (file, content_type) in [
        ("", "text/html"),
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let r = app.client.get(&format!("{base}{file}")).await.unwrap();
        assert_eq!(r.status, 200, "{file}");
        let ct = r.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with(content_type), "{file}: {ct}");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{file}: {csp}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        bodies.push(r.text());
    }
    let (html, js) = (&bodies[0], &bodies[1]);

    // CSP-clean HTML: scripts only by src, no inline style or event handlers, same-origin links.
    let lower = html.to_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..i + lower[i..].find('>').unwrap()];
        assert!(tag.contains(" src="), "inline script: {tag}");
    }
    for banned in [
        " style=",
        "<style",
        " onclick=",
        " onload=",
        " onsubmit=",
        "javascript:",
    ] {
        assert!(!lower.contains(banned), "{banned} in the page");
    }
    for attr in ["src=\"", "href=\""] {
        for (i, _) in lower.match_indices(attr) {
            let value = &lower[i + attr.len()..];
            let value = &value[..value.find('"').unwrap()];
            assert!(
                !value.contains("//") && !value.starts_with("data:"),
                "not same-origin: {value}"
            );
        }
    }
    assert!(
        !js.contains("eval(") && !js.contains("new Function"),
        "CSP forbids eval"
    );

    // Every `api("METHOD", "/path...")` call names a /browser route of the table.
    let table = routes::table(service);
    let mut calls = 0;
    for (i, _) in js.match_indices("api(\"") {
        let rest = &js[i + 5..];
        let method = &rest[..rest.find('"').unwrap()];
        let after = &rest[method.len() + 1..];
        let quote = after.find(['"', '`']).unwrap();
        let after = &after[quote + 1..];
        let path = &after[..after.find(['"', '`']).unwrap()];
        // `${...}` template parts stand for one path parameter; a query string is not the path.
        let mut route = String::new();
        let mut rest = path.split('?').next().unwrap();
        while let Some(start) = rest.find("${") {
            route.push_str(&rest[..start]);
            route.push_str("{}");
            rest = &rest[start + rest[start..].find('}').unwrap() + 1..];
        }
        route.push_str(rest);
        let full = format!("{api_base}{route}");
        assert!(
            table.iter().any(|r| r.realm == Realm::Browser
                && route_matches(r.path, &full)
                && r.method.as_ref().is_some_and(|m| m.as_str() == method)),
            "the UI calls {method} {full}, which is not a route"
        );
        calls += 1;
    }
    assert!(
        calls >= min_calls,
        "found only {calls} API calls in the script"
    );

    // The landing page links to the UI.
    let home = app
        .client
        .get(&format!("{}/browser/", app.public(service)))
        .await
        .unwrap()
        .text();
    assert!(home.contains(&format!("href=\"ui/{name}/\"")), "{home}");
    app.stop().await;
}
