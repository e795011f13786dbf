//! The JOSE browser UI: served publicly under /browser/ui/jose/ with the /browser security
//! headers, written so the strict CSP lets it run (no inline script, style or handlers, only
//! same-origin assets), and calling only API routes that exist under /browser/api/v1.

use cryptoutil_actors::ServiceName;
use cryptoutil_http::auth::Realm;
use cryptoutil_http::routes;

use crate::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn the_jose_ui_is_served_csp_clean_and_calls_only_existing_routes() {
    let app = TestApp::start(vec![ServiceName::Jose], &[], None).await;
    let base = format!("{}/browser/ui/jose/", app.public(ServiceName::Jose));
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
    let table = routes::table(ServiceName::Jose);
    let mut calls = 0;
    for (i, _) in js.match_indices("api(\"") {
        let rest = &js[i + 5..];
        let method = &rest[..rest.find('"').unwrap()];
        let after = &rest[method.len() + 1..];
        let quote = after.find(['"', '`']).unwrap();
        let after = &after[quote + 1..];
        let path = &after[..after.find(['"', '`']).unwrap()];
        // `${...}` template parts stand for one path parameter.
        let mut route = String::new();
        let mut rest = path;
        while let Some(start) = rest.find("${") {
            route.push_str(&rest[..start]);
            route.push_str("{kid}");
            rest = &rest[start + rest[start..].find('}').unwrap() + 1..];
        }
        route.push_str(rest);
        let full = format!("/browser/api/v1/jose{route}");
        assert!(
            table.iter().any(|r| r.realm == Realm::Browser
                && r.path == full
                && r.method.as_ref().is_some_and(|m| m.as_str() == method)),
            "the UI calls {method} {full}, which is not a route"
        );
        calls += 1;
    }
    assert!(calls >= 6, "found only {calls} API calls in the script");

    // The landing page links to the UI.
    let home = app
        .client
        .get(&format!("{}/browser/", app.public(ServiceName::Jose)))
        .await
        .unwrap()
        .text();
    assert!(home.contains("href=\"ui/jose/\""), "{home}");
    app.stop().await;
}
