//! A chat's messages form a tree: each follows its parent, and the chat shows one path,
//! from a first message down to its active leaf. The rules here are pure: they work on
//! messages as read, whatever read them.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::ids::MessageId;
use crate::message::Message;

/// Where a path ends (its newest message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEnd {
    /// At this message, which is on the path.
    At(MessageId),
    /// Above this message: the path is its ancestors (the next page of a path whose
    /// oldest message so far is this one).
    Above(MessageId),
}

/// Finds the path that ends at a message, and every path message's siblings, among a
/// chat's messages fed to it newest first (by time, then id) from the chat's newest on.
///
/// A message is always written after its parent, so the walk meets each path message
/// before its parent; a parent met earlier (a clock stepped back) is found too. Every
/// sibling of a path message is newer than their parent, so once the walk has met the
/// parent of the oldest path message it has seen all their siblings ([`PathWalk::is_done`]).
#[derive(Debug)]
pub struct PathWalk {
    /// The next path message to find; `None` once a first message was found.
    want: Option<MessageId>,
    /// Messages to skip before the path starts (`PathEnd::Above`).
    above: Option<MessageId>,
    limit: usize,
    path: Vec<Message>,
    /// Messages met that were not (yet) on the path, by id: every message met but the
    /// path's and the one to page above.
    met: HashMap<MessageId, Message>,
}

impl PathWalk {
    /// A walk for at most `limit` messages of the path ending at `end`.
    pub fn new(end: PathEnd, limit: usize) -> Self {
        let (want, above) = match end {
            PathEnd::At(id) => (Some(id), None),
            PathEnd::Above(id) => (None, Some(id)),
        };
        Self {
            want,
            above,
            limit,
            path: Vec::new(),
            met: HashMap::new(),
        }
    }

    /// Takes the next message, newest first.
    pub fn push(&mut self, message: Message) {
        if self.above == Some(message.id) {
            self.above = None;
            self.want = message.parent_id;
        } else if self.want == Some(message.id) && self.path.len() < self.limit {
            // The usual case: the next message read is the next one of the path.
            self.want = message.parent_id;
            self.path.push(message);
        } else {
            self.met.insert(message.id, message);
        }
        self.follow();
    }

    /// Moves down the path through every wanted message already met.
    fn follow(&mut self) {
        while self.path.len() < self.limit && !self.met.is_empty() {
            let Some(next) = self.want.and_then(|want| self.met.remove(&want)) else {
                if let Some(above) = self.above
                    && let Some(found) = self.met.remove(&above)
                {
                    // The message to page above was met before it was known to be wanted.
                    self.above = None;
                    self.want = found.parent_id;
                    continue;
                }
                return;
            };
            self.want = next.parent_id;
            self.path.push(next);
        }
    }

    /// Whether more messages could change the result: `false` once the path is as long
    /// as it may be (or reached a first message) and the parent of its oldest message
    /// was met. A path that reaches a first message needs every message of the chat
    /// (the first messages are siblings of each other): it is done when they run out.
    pub fn is_done(&self) -> bool {
        let Some(oldest) = self.path.last() else {
            return false;
        };
        let full = self.path.len() >= self.limit || self.want.is_none();
        // The parent is not on the path, nor the message paged above (that one is a
        // child of the path's newest): if it was met, it is among `met`.
        full && oldest
            .parent_id
            .is_some_and(|parent| self.met.contains_key(&parent))
    }

    /// How many more messages the path may take.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.path.len())
    }

    /// The path, newest first, each message with its sibling ids (oldest first).
    pub fn finish(self) -> Vec<Message> {
        // A path message's siblings are the messages met off the path with its parent
        // (no two path messages share one): usually none, or a few in a branched chat.
        let mut others: Vec<(Option<MessageId>, DateTime<Utc>, MessageId)> = self
            .met
            .values()
            .map(|message| (message.parent_id, message.created_at, message.id))
            .collect();
        others.sort_unstable();
        let mut path = self.path;
        for message in &mut path {
            let parent = message.parent_id;
            let start = others.partition_point(|&(other, ..)| other < parent);
            let more = &others[start..];
            let more = &more[..more.partition_point(|&(other, ..)| other == parent)];
            if more.is_empty() {
                if message.sibling_ids != [message.id] {
                    message.sibling_ids = vec![message.id];
                }
                continue;
            }
            let mut group: Vec<(DateTime<Utc>, MessageId)> =
                more.iter().map(|&(_, at, id)| (at, id)).collect();
            group.push((message.created_at, message.id));
            group.sort_unstable();
            message.sibling_ids = group.into_iter().map(|(_, id)| id).collect();
        }
        path
    }
}

/// A message's place in its chat's tree: what the subtree rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// The message.
    pub id: MessageId,
    /// Its parent; `None` for a first message.
    pub parent_id: Option<MessageId>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// The ids of `root` and every message below it, among `nodes` (a chat's).
pub fn subtree(root: MessageId, nodes: &[Node]) -> Vec<MessageId> {
    let mut children: HashMap<MessageId, Vec<MessageId>> = HashMap::new();
    for node in nodes {
        if let Some(parent) = node.parent_id {
            children.entry(parent).or_default().push(node.id);
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while let Some(&id) = found.get(next) {
        found.extend(children.get(&id).into_iter().flatten().copied());
        next += 1;
    }
    found
}

/// The newest leaf (a message without children) below `root`, among `nodes`: the
/// leaf of `root`'s subtree written last, `root` itself when it has no children.
pub fn newest_leaf_below(root: MessageId, nodes: &[Node]) -> MessageId {
    let below: HashSet<MessageId> = subtree(root, nodes).into_iter().collect();
    newest_leaf(nodes.iter().filter(|node| below.contains(&node.id)), nodes).unwrap_or(root)
}

/// The newest leaf of the whole chat whose messages are `nodes`; `None` when it has none.
pub fn newest_leaf_of_chat(nodes: &[Node]) -> Option<MessageId> {
    newest_leaf(nodes.iter(), nodes)
}

fn newest_leaf<'a>(
    candidates: impl Iterator<Item = &'a Node>,
    nodes: &[Node],
) -> Option<MessageId> {
    let parents: HashSet<MessageId> = nodes.iter().filter_map(|node| node.parent_id).collect();
    candidates
        .filter(|node| !parents.contains(&node.id))
        .max_by_key(|node| (node.created_at, node.id))
        .map(|node| node.id)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::ids::{ChatId, UserId};
    use crate::message::{MessageContent, MessageStatus, Role};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::seconds(seconds)
    }

    /// A message written at `seconds`, after `parent`.
    fn message(seconds: i64, parent: Option<&Message>) -> Message {
        Message {
            id: MessageId::generate(),
            chat_id: ChatId::from_uuid(uuid::Uuid::nil()),
            user_id: UserId::from_uuid(uuid::Uuid::nil()),
            role: Role::User,
            content: MessageContent::from_trusted(format!("at {seconds}")),
            created_at: at(seconds),
            parent_id: parent.map(|p| p.id),
            status: MessageStatus::Complete,
            sibling_ids: vec![],
            usage: None,
        }
    }

    /// Feeds `messages` newest first until the walk is done.
    fn walk(end: PathEnd, limit: usize, messages: &[Message]) -> Vec<Message> {
        let mut newest_first = messages.to_vec();
        newest_first.sort_by_key(|m| std::cmp::Reverse((m.created_at, m.id)));
        let mut walk = PathWalk::new(end, limit);
        for message in newest_first {
            if walk.is_done() {
                break;
            }
            walk.push(message);
        }
        walk.finish()
    }

    fn ids(messages: &[Message]) -> Vec<MessageId> {
        messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn the_path_is_the_ancestors_of_its_end_never_another_branch() {
        let q = message(1, None);
        let a1 = message(2, Some(&q));
        let a2 = message(3, Some(&q));
        let next = message(4, Some(&a1));

        let path = walk(
            PathEnd::At(next.id),
            10,
            &[q.clone(), a1.clone(), a2.clone(), next.clone()],
        );

        assert_eq!(ids(&path), [next.id, a1.id, q.id]);
        assert_eq!(path[1].sibling_ids, [a1.id, a2.id]);
        assert_eq!(path[0].sibling_ids, [next.id]);
        assert_eq!(path[2].sibling_ids, [q.id]);
    }

    #[test]
    fn a_page_stops_at_its_limit_and_the_next_starts_above_its_oldest() {
        let mut chain = vec![message(1, None)];
        for t in 2..=6 {
            let parent = chain.last().cloned();
            chain.push(message(t, parent.as_ref()));
        }

        let first = walk(PathEnd::At(chain[5].id), 2, &chain);
        let second = walk(PathEnd::Above(first[1].id), 2, &chain);
        let last = walk(PathEnd::Above(second[1].id), 10, &chain);

        assert_eq!(ids(&first), [chain[5].id, chain[4].id]);
        assert_eq!(ids(&second), [chain[3].id, chain[2].id]);
        assert_eq!(ids(&last), [chain[1].id, chain[0].id]);
    }

    #[test]
    fn first_messages_are_siblings_and_a_newer_branch_is_seen_for_siblings() {
        let first = message(1, None);
        let other_first = message(5, None);
        let reply = message(2, Some(&first));
        // Written after the path's end: a regenerated reply on another branch.
        let regenerated = message(9, Some(&first));

        let path = walk(
            PathEnd::At(reply.id),
            10,
            &[
                first.clone(),
                other_first.clone(),
                reply.clone(),
                regenerated.clone(),
            ],
        );

        assert_eq!(ids(&path), [reply.id, first.id]);
        assert_eq!(path[0].sibling_ids, [reply.id, regenerated.id]);
        assert_eq!(path[1].sibling_ids, [first.id, other_first.id]);
    }

    #[test]
    fn a_parent_stamped_after_its_child_is_still_found() {
        let parent = message(10, None);
        let child = message(9, Some(&parent));

        let path = walk(PathEnd::At(child.id), 10, &[parent.clone(), child.clone()]);

        assert_eq!(ids(&path), [child.id, parent.id]);
    }

    #[test]
    fn the_newest_leaf_below_a_message_is_the_last_written_leaf_of_its_subtree() {
        let node = |id: &Message| Node {
            id: id.id,
            parent_id: id.parent_id,
            created_at: id.created_at,
        };
        let q = message(1, None);
        let a1 = message(2, Some(&q));
        let a1_next = message(3, Some(&a1));
        let a2 = message(4, Some(&q));
        let elsewhere = message(5, None);
        let nodes: Vec<Node> = [&q, &a1, &a1_next, &a2, &elsewhere].map(node).to_vec();

        assert_eq!(newest_leaf_below(q.id, &nodes), a2.id);
        assert_eq!(newest_leaf_below(a1.id, &nodes), a1_next.id);
        assert_eq!(newest_leaf_below(a2.id, &nodes), a2.id);
        assert_eq!(newest_leaf_of_chat(&nodes), Some(elsewhere.id));
        assert_eq!(newest_leaf_of_chat(&[]), None);
        let mut below_q = subtree(q.id, &nodes);
        below_q.sort();
        let mut expected = vec![q.id, a1.id, a1_next.id, a2.id];
        expected.sort();
        assert_eq!(below_q, expected);
    }
}
