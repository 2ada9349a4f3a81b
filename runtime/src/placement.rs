//! Placement requirements over capability tags (BLUEPRINT section 10).
//!
//! A requirement is an any-of list of all-of tag sets; a tag is `key=value`, or `key=*` for
//! "present with any value". Text form: alternatives separated by `|`, tags within one by `,`:
//! the trainer needs `accel=* | tier=platform`. Preferences use the same grammar and only rank
//! nodes that meet the requirement. The cluster decides placement; the runtime only declares.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One tag condition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TagMatch {
    pub key: String,
    /// `None` matches any value (`key=*`).
    pub value: Option<String>,
}

/// Any-of (outer) all-of (inner) tag conditions; empty means "anywhere".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub any_of: Vec<Vec<TagMatch>>,
}

/// A requirement or preference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub text: String,
    pub reason: &'static str,
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad tag expression {:?}: {}", self.text, self.reason)
    }
}

impl std::error::Error for TagError {}

fn valid_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl TagMatch {
    /// Parses `key=value` or `key=*`.
    pub fn parse(text: &str) -> Result<Self, TagError> {
        let err = |reason| TagError { text: text.to_string(), reason };
        let (key, value) = text.trim().split_once('=').ok_or_else(|| err("a tag is key=value or key=*"))?;
        if !valid_word(key) {
            return Err(err("a tag key is letters, digits, '_', '.' or '-'"));
        }
        let value = match value {
            "*" => None,
            v if valid_word(v) => Some(v.to_string()),
            _ => return Err(err("a tag value is letters, digits, '_', '.', '-', or '*'")),
        };
        Ok(TagMatch { key: key.to_string(), value })
    }

    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        match (tags.get(&self.key), &self.value) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        }
    }
}

impl Requirement {
    /// Anywhere.
    pub const fn none() -> Self {
        Requirement { any_of: Vec::new() }
    }

    /// Parses `a=1,b=* | c=2`.
    pub fn parse(text: &str) -> Result<Self, TagError> {
        if text.trim().is_empty() {
            return Ok(Requirement::none());
        }
        let any_of = text
            .split('|')
            .map(|alt| alt.split(',').map(TagMatch::parse).collect::<Result<Vec<_>, _>>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Requirement { any_of })
    }

    /// Whether a node with `tags` meets it.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        self.any_of.is_empty() || self.any_of.iter().any(|all| all.iter().all(|t| t.matches(tags)))
    }

    pub fn is_none(&self) -> bool {
        self.any_of.is_empty()
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alts: Vec<String> = self
            .any_of
            .iter()
            .map(|all| {
                let tags: Vec<String> =
                    all.iter().map(|t| format!("{}={}", t.key, t.value.as_deref().unwrap_or("*"))).collect();
                tags.join(",")
            })
            .collect();
        f.write_str(&alts.join(" | "))
    }
}

/// Where an actor may run (`requires`) and where it would rather run (`prefers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub requires: Requirement,
    pub prefers: Requirement,
}

impl Placement {
    /// Anywhere, no preference.
    pub const fn none() -> Self {
        Placement { requires: Requirement::none(), prefers: Requirement::none() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn trainer_requirement_matches_accelerators_or_platform() {
        let r = Requirement::parse("accel=* | tier=platform").unwrap();
        assert!(r.matches(&tags(&[("tier", "inference"), ("accel", "gpu")])));
        assert!(r.matches(&tags(&[("tier", "platform")])));
        assert!(!r.matches(&tags(&[("tier", "inference")])));
        assert_eq!(r.to_string(), "accel=* | tier=platform");
    }

    #[test]
    fn all_of_needs_every_tag() {
        let r = Requirement::parse("tier=inference,mem=4g").unwrap();
        assert!(r.matches(&tags(&[("tier", "inference"), ("mem", "4g")])));
        assert!(!r.matches(&tags(&[("tier", "inference")])));
        assert!(Requirement::none().matches(&tags(&[])));
    }

    #[test]
    fn refuses_bad_syntax() {
        for bad in ["tier", "=x", "tier=", "tier=a b", "a=1 |", "a=1,,b=2"] {
            assert!(Requirement::parse(bad).is_err(), "{bad}");
        }
    }
}
