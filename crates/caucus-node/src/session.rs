//! A home opened for one command ([`Session`]): the node, and whether this process
//! writes it directly or hands its writes to the `caucus run` that holds it (through
//! the control socket), so one process writes a home at a time.

use crate::control::{Client, Reply, Request, StatusReply};
use crate::{Home, Node, NodeError};
use caucus_proto::{EntryId, GroupId, NoticeId, Operation};

/// A home opened for one command: its node, and the home's lock unless a running node
/// holds it.
#[derive(Debug)]
pub struct Session {
    home: Home,
    node: Node,
    /// Held while no `caucus run` owns the home: this process writes directly.
    lock: Option<std::fs::File>,
}

fn unexpected(what: &str, reply: &Reply) -> NodeError {
    NodeError::Refused(format!("unexpected reply{what}: {reply:?}"))
}

impl Session {
    /// Opens the home at `dir` (initialized) with `passphrase`, taking its lock unless a
    /// running node holds it.
    pub fn open(dir: &std::path::Path, passphrase: &[u8]) -> Result<Session, NodeError> {
        let home = Home::new(dir);
        let lock = home.try_lock()?;
        let node = Node::open(home.dir(), passphrase)?;
        Ok(Session { home, node, lock })
    }

    /// The node (read from this process's own connection, running node or not).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node, to change directly (only with no running node: see [`Session::running`]).
    pub fn node_mut(&mut self) -> &mut Node {
        &mut self.node
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Whether a running node (`caucus run`) holds the home.
    pub fn running(&self) -> bool {
        self.lock.is_none()
    }

    /// Gives up the home's lock (to reopen the node on the network), if held.
    pub fn release_lock(&mut self) -> Option<std::fs::File> {
        self.lock.take()
    }

    /// The home, the node and the lock (for starting the node on the network).
    pub fn into_parts(self) -> (Home, Node, Option<std::fs::File>) {
        (self.home, self.node, self.lock)
    }

    /// Writes through the running node if there is one (published at once), else
    /// directly.
    pub async fn write(&mut self, group: &GroupId, op: Operation) -> Result<EntryId, NodeError> {
        if !self.running() {
            return self.node.write(group, op);
        }
        match Client::call(&self.home.socket(), &Request::Write { group: *group, op }).await? {
            Reply::Written { ids } => ids
                .first()
                .copied()
                .ok_or_else(|| NodeError::Refused("no id in the reply".into())),
            other => Err(unexpected(" from the running node", &other)),
        }
    }

    /// Many operations in one transaction (an import), through the running node if any;
    /// `progress(done, total)` counts them when written here.
    pub async fn write_many(
        &mut self,
        group: &GroupId,
        ops: Vec<Operation>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), NodeError> {
        if self.running() {
            Client::call(
                &self.home.socket(),
                &Request::WriteMany { group: *group, ops },
            )
            .await?;
        } else {
            self.node.write_many(group, ops, progress)?;
        }
        Ok(())
    }

    /// Moves the group to a new epoch (after a removal or revocation), through the
    /// running node if any. Returns the new epoch.
    pub async fn rotate(&mut self, group: &GroupId) -> Result<u64, NodeError> {
        if !self.running() {
            return self.node.rotate_epoch(group);
        }
        match Client::call(&self.home.socket(), &Request::Rotate { group: *group }).await? {
            Reply::Rotated { epoch } => Ok(epoch),
            other => Err(unexpected("", &other)),
        }
    }

    /// The running node's status, if one runs.
    pub async fn running_status(&self) -> Result<Option<StatusReply>, NodeError> {
        if !self.running() {
            return Ok(None);
        }
        match Client::call(&self.home.socket(), &Request::Status).await? {
            Reply::Status(s) => Ok(Some(s)),
            _ => Ok(None),
        }
    }

    /// "Delivered to k of n" of a notice, as the running node knows it now (`None` with
    /// no running node, or no answer).
    pub async fn delivery(
        &self,
        group: &GroupId,
        notice: &NoticeId,
    ) -> Result<Option<(u32, u32)>, NodeError> {
        if !self.running() {
            return Ok(None);
        }
        let asked = Request::Delivery {
            group: *group,
            notice: *notice,
        };
        match Client::call(&self.home.socket(), &asked).await? {
            Reply::Delivery { acked, total } => Ok(Some((acked, total))),
            _ => Ok(None),
        }
    }
}
