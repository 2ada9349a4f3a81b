//! Consumer groups: who holds which partition (eager rebalance: every member's partitions are
//! revoked, then the group's partitions, sorted, are dealt round-robin over the members sorted
//! by name, each partition to a member subscribed to its topic), and committed offsets, kept
//! durably in `group@{hex name}` (write temp, fsync, rename: `Storage::replace`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ports::eventlog::{LogError, TopicPartition};

use super::storage::Storage;

const GROUP_PREFIX: &str = "group@";

/// A group: its live members (name -> consumer id) and committed offsets.
#[derive(Debug, Default)]
pub struct Group {
    pub members: BTreeMap<String, u64>,
    pub committed: BTreeMap<TopicPartition, u64>,
}

#[derive(Serialize, Deserialize)]
struct Commits {
    group: String,
    offsets: Vec<(TopicPartition, u64)>,
}

/// Deals `partitions` (sorted) round-robin over `members` (name -> subscribed topics, sorted by
/// name); a partition goes to the next member subscribed to its topic.
pub fn assign(
    members: &BTreeMap<String, Vec<String>>,
    partitions: &[TopicPartition],
) -> BTreeMap<String, Vec<TopicPartition>> {
    let names: Vec<&String> = members.keys().collect();
    let mut dealt: BTreeMap<String, Vec<TopicPartition>> =
        names.iter().map(|n| ((*n).clone(), Vec::new())).collect();
    let mut turn = 0;
    for partition in partitions {
        let eligible = (0..names.len())
            .map(|i| names[(turn + i) % names.len()])
            .position(|name| members[name].contains(&partition.topic));
        if let Some(i) = eligible {
            let name = names[(turn + i) % names.len()];
            dealt.get_mut(name).expect("every member is dealt").push(partition.clone());
            turn = (turn + i + 1) % names.len();
        }
    }
    dealt
}

/// The file holding `group`'s commits.
fn file_name(group: &str) -> String {
    format!("{GROUP_PREFIX}{}", hex::encode(group.as_bytes()))
}

/// Stores `group`'s committed offsets, replacing the previous ones.
pub fn store(
    storage: &dyn Storage,
    group: &str,
    committed: &BTreeMap<TopicPartition, u64>,
) -> Result<(), LogError> {
    let commits = Commits { group: group.to_string(), offsets: committed.clone().into_iter().collect() };
    let bytes = serde_json::to_vec(&commits).expect("offsets serialize");
    let file = file_name(group);
    storage.replace(&file, &bytes).map_err(|e| LogError::Io(format!("storing commits in {file}: {e}")))
}

/// Every group's committed offsets found in `names`.
pub fn load(storage: &dyn Storage, names: &[String]) -> Result<BTreeMap<String, Group>, LogError> {
    let mut groups = BTreeMap::new();
    for name in names.iter().filter(|n| n.starts_with(GROUP_PREFIX) && !n.ends_with(".tmp")) {
        let io = |e: std::io::Error| LogError::Io(format!("{name}: {e}"));
        let bytes = storage.read(name, 0, storage.len(name).map_err(io)? as usize).map_err(io)?;
        let commits: Commits = serde_json::from_slice(&bytes)
            .map_err(|e| LogError::Corrupt(format!("{name}: committed offsets unreadable: {e}")))?;
        let group = Group { members: BTreeMap::new(), committed: commits.offsets.into_iter().collect() };
        groups.insert(commits.group, group);
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_dealt_round_robin_by_member_name_and_topic() {
        let members = BTreeMap::from([
            ("b".to_string(), vec!["t".to_string(), "u".to_string()]),
            ("a".to_string(), vec!["t".to_string()]),
        ]);
        let partitions: Vec<TopicPartition> = [("t", 0), ("t", 1), ("t", 2), ("u", 0), ("u", 1)]
            .iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect();
        let dealt = assign(&members, &partitions);
        let names = |m: &str| dealt[m].iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(names("a"), vec!["t/0", "t/2"]);
        assert_eq!(names("b"), vec!["t/1", "u/0", "u/1"]);
    }
}
