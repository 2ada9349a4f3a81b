//! Logical actor paths: `/inference/stage2/motor-17`.
//!
//! A path names an actor wherever it lives; the parent of a path is its supervisor. Paths are
//! cheap to clone (one `Arc<str>`) because every envelope and ref carries one.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest path accepted, in bytes: paths travel in every remote frame, so they stay short.
pub const PATH_LEN_MAX: usize = 256;

/// A validated logical path: `/` or `/seg/seg...`, segments of `[A-Za-z0-9_.-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ActorPath(Arc<str>);

/// Why a string is not a valid actor path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub path: String,
    pub reason: &'static str,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid actor path {:?}: {}", self.path, self.reason)
    }
}

impl std::error::Error for PathError {}

impl ActorPath {
    /// The root guardian's path.
    pub fn root() -> Self {
        ActorPath(Arc::from("/"))
    }

    /// Parses and validates `s`.
    pub fn parse(s: &str) -> Result<Self, PathError> {
        let err = |reason| PathError { path: s.to_string(), reason };
        if s.len() > PATH_LEN_MAX {
            return Err(err("longer than 256 bytes"));
        }
        if s == "/" {
            return Ok(Self::root());
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(err("must start with '/'"));
        };
        for seg in rest.split('/') {
            if seg.is_empty() {
                return Err(err("empty segment (a '//' or a trailing '/')"));
            }
            if !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
                return Err(err("segments may hold only letters, digits, '_', '.' and '-'"));
            }
        }
        Ok(ActorPath(Arc::from(s)))
    }

    /// The path of child `name` under this one.
    pub fn child(&self, name: &str) -> Result<Self, PathError> {
        if self.is_root() {
            Self::parse(&format!("/{name}"))
        } else {
            Self::parse(&format!("{}/{name}", self.0))
        }
    }

    /// The supervisor's path; `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        if self.is_root() {
            return None;
        }
        let cut = self.0.rfind('/').expect("validated paths start with '/'");
        Some(if cut == 0 { Self::root() } else { ActorPath(Arc::from(&self.0[..cut])) })
    }

    /// The last segment (`"motor-17"` for `/inference/stage2/motor-17`).
    pub fn name(&self) -> &str {
        &self.0[self.0.rfind('/').map_or(0, |i| i + 1)..]
    }

    /// Whether this path is `root` or lies under it.
    pub fn is_within(&self, root: &ActorPath) -> bool {
        root.is_root()
            || self.0.strip_prefix(&*root.0).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    pub fn is_root(&self) -> bool {
        &*self.0 == "/"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ActorPath {
    type Error = PathError;
    fn try_from(s: String) -> Result<Self, PathError> {
        Self::parse(&s)
    }
}

impl From<ActorPath> for String {
    fn from(p: ActorPath) -> String {
        p.0.to_string()
    }
}

impl fmt::Display for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_navigates() {
        let p = ActorPath::parse("/inference/stage2/motor-17").unwrap();
        assert_eq!(p.name(), "motor-17");
        assert_eq!(p.parent().unwrap().as_str(), "/inference/stage2");
        assert_eq!(ActorPath::parse("/a").unwrap().parent().unwrap(), ActorPath::root());
        assert_eq!(ActorPath::root().parent(), None);
        assert_eq!(ActorPath::root().child("x").unwrap().as_str(), "/x");
    }

    #[test]
    fn a_path_is_within_itself_its_ancestors_and_the_root_only() {
        let p = |s: &str| ActorPath::parse(s).unwrap();
        let ledger = p("/bank/ledger");
        for root in ["/", "/bank", "/bank/ledger"] {
            assert!(ledger.is_within(&p(root)), "{root}");
        }
        for other in ["/ban", "/bank/ledger/x", "/till"] {
            assert!(!ledger.is_within(&p(other)), "{other}");
        }
    }

    #[test]
    fn refuses_bad_paths_with_reasons() {
        for bad in ["", "a/b", "/a//b", "/a/", "/a b", "/ä"] {
            let err = ActorPath::parse(bad).unwrap_err();
            assert!(!err.reason.is_empty(), "{bad}");
        }
        assert!(ActorPath::parse(&format!("/{}", "x".repeat(300))).is_err());
    }
}
