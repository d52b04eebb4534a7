//! Search: a registry's `_catalog`, followed page by page through its `Link` headers and
//! filtered by a term; and Docker Hub's own search API for `docker.io`.
//!
//! Only listing: nothing here reads manifests. Invariant: pagination stops on a page
//! without `rel="next"`, on a link seen before, or after [`MAX_PAGES`] pages.

use super::RegistryError;
use super::client::Client;
use super::transport;

/// Pages followed at most (a registry looping its links cannot hang a search).
pub const MAX_PAGES: usize = 1000;

/// One row of `camada search`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    pub name: String,
    pub description: String,
    pub stars: Option<u64>,
    pub official: bool,
}

#[derive(serde::Deserialize)]
struct CatalogPage {
    #[serde(default)]
    repositories: Option<Vec<String>>,
}

/// Every repository of the registry whose name contains `term`, in catalog order, at
/// most `limit`.
pub fn catalog(
    client: &Client,
    term: &str,
    page_size: usize,
    limit: usize,
) -> Result<Vec<SearchResult>, RegistryError> {
    let mut url = format!("{}/v2/_catalog?n={}", client.base(), page_size.max(1));
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        if !seen.insert(url.clone()) {
            break;
        }
        let mut resp = client.get("searching", &url)?;
        if resp.status != 200 {
            return Err(client.fail("searching", "_catalog", &mut resp));
        }
        let link = resp.header("link").map(str::to_owned);
        let mut body = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(resp.body.as_reader(), 16 << 20),
            &mut body,
        )
        .map_err(|e| RegistryError::Body {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let page: CatalogPage =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                what: format!("catalog of {}", client.registry()),
                reason: format!("invalid answer: {e}"),
            })?;
        for name in page.repositories.unwrap_or_default() {
            if name.contains(term) {
                out.push(SearchResult {
                    name,
                    description: String::new(),
                    stars: None,
                    official: false,
                });
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        match link.as_deref().and_then(transport::link_next) {
            Some(next) => match transport::resolve_location(&url, &next) {
                Some(u) => url = u,
                None => break,
            },
            None => break,
        }
    }
    Ok(out)
}

/// The Docker Hub search request for `term`.
pub fn hub_search_url(term: &str, limit: usize) -> String {
    let url = transport::append_query("https://index.docker.io/v1/search", "q", term);
    transport::append_query(&url, "n", &limit.to_string())
}

/// Parses Docker Hub's search answer.
pub fn parse_hub_search(body: &[u8]) -> Result<Vec<SearchResult>, String> {
    #[derive(serde::Deserialize)]
    struct Row {
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        star_count: Option<u64>,
        #[serde(default)]
        is_official: bool,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        results: Vec<Row>,
    }
    let a: Answer =
        serde_json::from_slice(body).map_err(|e| format!("invalid search answer: {e}"))?;
    Ok(a.results
        .into_iter()
        .map(|r| SearchResult {
            name: r.name,
            description: r.description.unwrap_or_default(),
            stars: r.star_count,
            official: r.is_official,
        })
        .collect())
}

/// Docker Hub's search for `docker.io/TERM` (no catalog there).
pub fn hub_search(
    transport: &transport::Transport,
    term: &str,
    limit: usize,
) -> Result<Vec<SearchResult>, RegistryError> {
    let url = hub_search_url(term, limit);
    let mut resp = transport
        .send(
            &ureq::http::Method::GET,
            &url,
            &[],
            None,
            transport::ReqBody::Empty,
        )
        .map_err(|e| RegistryError::Connect {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    if resp.status != 200 {
        return Err(RegistryError::Status {
            what: "searching".into(),
            url,
            status: resp.status,
            detail: String::new(),
        });
    }
    let body = resp.text(16 << 20);
    let mut rows = parse_hub_search(body.as_bytes()).map_err(|reason| RegistryError::Protocol {
        what: "Docker Hub search".into(),
        reason,
    })?;
    rows.truncate(limit);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_request_and_answer() {
        assert_eq!(
            hub_search_url("my app", 25),
            "https://index.docker.io/v1/search?q=my%20app&n=25"
        );
        let rows = parse_hub_search(
            br#"{"num_results":2,"query":"busybox","results":[
                {"name":"busybox","description":"Busybox base image.","star_count":3300,"is_official":true,"is_automated":false},
                {"name":"user/busybox","description":null,"star_count":0,"is_official":false}]}"#,
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "busybox");
        assert_eq!(rows[0].stars, Some(3300));
        assert!(rows[0].official);
        assert_eq!(rows[1].description, "");
        assert!(!rows[1].official);
        assert!(parse_hub_search(b"<html>").is_err());
        assert!(parse_hub_search(br#"{"results":3}"#).is_err());
    }
}
