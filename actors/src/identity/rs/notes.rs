//! `NotesHandle`: the notes of identity-rs, one sealed record each (table `identity_notes_v1`,
//! key `<tenant>/<owner>/<id>` where the owner is SHA-256 of the token's `iss` and `sub`: a
//! subject is unique only within its issuer, and no `sub` can reach into another's prefix).
//! Every read and write is scoped to the caller's tenant, issuer and `sub`: another user's note
//! is a 404, like one that never existed.

use std::sync::Arc;

use cryptoutil_protocols::ids::TenantId;
use cryptoutil_protocols::jose::b64;
use cryptoutil_protocols::oauth;
use cryptoutil_storage::{Store, Table};
use serde::{Deserialize, Serialize};

use super::RsSettings;
use crate::error::Error;

/// Most notes one user keeps.
pub const MAX_NOTES: usize = 100;
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest body, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// A note as stored and answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Its id (random, base64url).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// When it was written (Unix seconds).
    pub created: u64,
}

/// What a caller writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    /// 1 to [`MAX_TITLE`] characters, no control characters.
    pub title: String,
    /// At most [`MAX_BODY`] bytes.
    #[serde(default)]
    pub body: String,
}

impl NoteInput {
    /// Why the note cannot be kept, if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Some("title: 1 to 200 characters");
        }
        if title.chars().any(char::is_control) {
            return Some("title: no control characters");
        }
        if self.body.len() > MAX_BODY {
            return Some("body: at most 16384 bytes");
        }
        None
    }
}

/// Who owns a note: the token's tenant, issuer and `sub`.
#[derive(Debug, Clone)]
pub struct Owner {
    tenant: TenantId,
    digest: String,
}

impl Owner {
    /// The owner a token names: `subject` of `issuer` in `tenant`.
    pub fn new(tenant: &TenantId, issuer: &str, subject: &str) -> Self {
        let mut named = Vec::with_capacity(issuer.len() + 1 + subject.len());
        named.extend_from_slice(issuer.as_bytes());
        named.push(0);
        named.extend_from_slice(subject.as_bytes());
        Self {
            tenant: tenant.clone(),
            digest: b64::encode(&oauth::token_digest(&named)),
        }
    }

    /// Which of the striped creation locks this owner takes.
    fn stripe(&self) -> usize {
        usize::from(self.digest.as_bytes().first().copied().unwrap_or(0)) % STRIPES
    }

    fn prefix(&self) -> String {
        format!("{}/{}/", self.tenant.as_str(), self.digest)
    }

    fn key(&self, id: &str) -> Vec<u8> {
        format!("{}{id}", self.prefix()).into_bytes()
    }
}

/// Creation locks, owners spread over them.
const STRIPES: usize = 64;

/// The notes of identity-rs.
#[derive(Clone)]
pub struct NotesHandle {
    store: Arc<Store>,
    settings: Arc<RsSettings>,
    /// The owner's stripe is held by a create from its count to its commit, so two creates of
    /// one owner cannot pass the limit together (and one owner's creates do not stall all).
    writing: Arc<Vec<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for NotesHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotesHandle")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

const WHAT: &str = "note";

impl NotesHandle {
    /// Notes in `store`; `settings` say what the service publishes about itself.
    pub fn new(store: Arc<Store>, settings: RsSettings) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            writing: Arc::new((0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect()),
        }
    }

    /// What identity-rs publishes about itself.
    pub fn settings(&self) -> &RsSettings {
        &self.settings
    }

    /// The owner's notes, oldest first.
    pub async fn list(&self, owner: Owner) -> Result<Vec<Note>, Error> {
        let store = Arc::clone(&self.store);
        blocking(move || list(&store, &owner)).await
    }

    /// The owner's note `id`.
    pub async fn get(&self, owner: Owner, id: String) -> Result<Note, Error> {
        let store = Arc::clone(&self.store);
        blocking(move || {
            crate::record::load::<Note>(&store, Table::IdentityNotes, &owner.key(&id), WHAT)?
                .ok_or(Error::NotFound { what: WHAT })
        })
        .await
    }

    /// Keeps a new note of the owner's (at most [`MAX_NOTES`]).
    pub async fn create(&self, owner: Owner, input: NoteInput) -> Result<Note, Error> {
        if let Some(reason) = input.problem() {
            return Err(Error::BadRequest { reason });
        }
        let id = oauth::random_token(12)
            .map_err(|_| Error::Internal {
                what: "random generator",
            })?
            .to_string();
        let note = Note {
            id,
            title: input.title.trim().to_owned(),
            body: input.body,
            created: crate::now_unix(),
        };
        let store = Arc::clone(&self.store);
        let _writing = match self.writing.get(owner.stripe()) {
            Some(lock) => lock.lock().await,
            None => {
                return Err(Error::Internal {
                    what: "note lock stripe",
                })
            }
        };
        blocking(move || {
            if list(&store, &owner)?.len() >= MAX_NOTES {
                return Err(Error::Conflict {
                    what: "at most 100 notes per user",
                });
            }
            let plain = crate::record::encode(&note)?;
            let write = store.sealed_create(Table::IdentityNotes, &owner.key(&note.id), &plain)?;
            store.apply(vec![write])?;
            Ok(note)
        })
        .await
    }

    /// Deletes the owner's note `id`.
    pub async fn delete(&self, owner: Owner, id: String) -> Result<(), Error> {
        let store = Arc::clone(&self.store);
        blocking(move || {
            let key = owner.key(&id);
            if store.get_sealed(Table::IdentityNotes, &key)?.is_none() {
                return Err(Error::NotFound { what: WHAT });
            }
            store.delete(Table::IdentityNotes, &key)?;
            Ok(())
        })
        .await
    }
}

fn list(store: &Store, owner: &Owner) -> Result<Vec<Note>, Error> {
    let mut notes: Vec<Note> =
        crate::record::scan(store, Table::IdentityNotes, owner.prefix().as_bytes(), WHAT)?;
    notes.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    Ok(notes)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    crate::ask::blocking("Notes", f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(title: &str, body: &str) -> NoteInput {
        NoteInput {
            title: title.into(),
            body: body.into(),
        }
    }

    #[test]
    fn a_note_needs_a_short_printable_title_and_a_bounded_body() {
        assert_eq!(input("groceries", "milk").problem(), None);
        assert!(input("  ", "").problem().is_some());
        assert!(input(&"t".repeat(201), "").problem().is_some());
        assert_eq!(input(&"é".repeat(200), "").problem(), None);
        assert!(input("a\u{7}b", "").problem().is_some());
        assert!(input("t", &"b".repeat(MAX_BODY + 1)).problem().is_some());
        assert_eq!(input("t", &"b".repeat(MAX_BODY)).problem(), None);
    }

    #[test]
    fn owners_are_kept_apart_by_tenant_issuer_and_subject() {
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        let iss = "https://as.example";
        let a = Owner::new(&acme, iss, "alice");
        assert_eq!(a.prefix(), Owner::new(&acme, iss, "alice").prefix());
        assert_ne!(a.prefix(), Owner::new(&acme, iss, "bob").prefix());
        assert_ne!(a.prefix(), Owner::new(&other, iss, "alice").prefix());
        assert_ne!(
            a.prefix(),
            Owner::new(&acme, "https://other.example", "alice").prefix()
        );
        // The issuer and subject cannot be shifted into each other.
        assert_ne!(
            Owner::new(&acme, "https://as.example/a", "lice").prefix(),
            a.prefix()
        );
        // A subject with the separator cannot reach another owner's prefix.
        let tricky = Owner::new(&acme, iss, "alice/x");
        assert!(!tricky.prefix().starts_with(&a.prefix()));
        assert_eq!(a.prefix().matches('/').count(), 2);
    }
}
