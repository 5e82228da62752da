//! The baseline a local-first developer would pick: automerge's sync protocol carrying
//! the same records (one change per record, unencrypted, in memory, no disk), two
//! documents exchanging encoded sync messages in this process.

use crate::campaign::fields_as_text;
use anyhow::Result;
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ROOT, ReadDoc};
use caucus_proto::Operation;
use std::time::{Duration, Instant};

/// One sync run: time, bytes of encoded messages both ways, message count.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exchange {
    /// Wall time of the whole exchange, encoding and applying included.
    pub(crate) time: Duration,
    /// Encoded sync messages, both ways.
    pub(crate) bytes: u64,
    /// Messages, both ways.
    pub(crate) messages: u64,
}

/// The automerge figures of one run.
pub(crate) struct Figures {
    /// Building the writer's document, one commit per record.
    pub(crate) build: Duration,
    /// A fresh document syncing everything.
    pub(crate) initial: Exchange,
    /// After a reconnect (sync states persisted and restored), one new note.
    pub(crate) one_new: Exchange,
    /// After another reconnect, 100 new notes.
    pub(crate) hundred_new: Exchange,
}

fn text(s: &str) -> automerge::ScalarValue {
    automerge::ScalarValue::Str(s.into())
}

/// Writes one record as one change.
fn commit(doc: &mut Automerge, op: &Operation, n: u64) -> Result<()> {
    let mut tx = doc.transaction();
    match op {
        Operation::ContactSet { contact, fields } => {
            let contacts = match tx.get(ROOT, "contacts")? {
                Some((_, id)) => id,
                None => tx.put_object(ROOT, "contacts", ObjType::Map)?,
            };
            let c = tx.put_object(&contacts, contact.to_string(), ObjType::Map)?;
            for (k, v) in fields_as_text(fields) {
                tx.put(&c, k, text(&v))?;
            }
        }
        Operation::NoteAdded { contact, note } => {
            let notes = match tx.get(ROOT, "notes")? {
                Some((_, id)) => id,
                None => tx.put_object(ROOT, "notes", ObjType::Map)?,
            };
            let o = tx.put_object(&notes, n.to_string(), ObjType::Map)?;
            tx.put(&o, "contact", text(&contact.to_string()))?;
            tx.put(&o, "text", text(&note.text))?;
            if let Some(d) = note.date {
                tx.put(&o, "date", text(&d.to_string()))?;
            }
            if let Some(by) = &note.by {
                tx.put(&o, "by", text(by))?;
            }
        }
        Operation::NoticePosted { notice, content } => {
            let notices = match tx.get(ROOT, "notices")? {
                Some((_, id)) => id,
                None => tx.put_object(ROOT, "notices", ObjType::Map)?,
            };
            let o = tx.put_object(&notices, notice.to_string(), ObjType::Map)?;
            tx.put(&o, "title", text(&content.title))?;
            tx.put(&o, "place", text(&content.place))?;
            tx.put(&o, "body", text(&content.body))?;
            tx.put(&o, "starts_at_ms", content.starts_at_ms)?;
            tx.put(&o, "urgent", content.urgent)?;
        }
        _ => {}
    }
    tx.commit();
    Ok(())
}

/// One message from `from` to `to`, if `from` has one: counted, encoded, decoded, applied.
fn send(
    from: &mut Automerge,
    from_state: &mut sync::State,
    to: &mut Automerge,
    to_state: &mut sync::State,
    count: &mut (u64, u64),
) -> Result<bool> {
    let Some(m) = from.generate_sync_message(from_state) else {
        return Ok(false);
    };
    let wire = m.encode();
    count.0 += wire.len() as u64;
    count.1 += 1;
    to.receive_sync_message(to_state, sync::Message::decode(&wire)?)?;
    Ok(true)
}

/// Runs sync rounds between the two documents until neither has anything to send.
fn exchange(
    a: &mut Automerge,
    sa: &mut sync::State,
    b: &mut Automerge,
    sb: &mut sync::State,
) -> Result<Exchange> {
    let started = Instant::now();
    let mut count = (0u64, 0u64);
    loop {
        let a_sent = send(a, sa, b, sb, &mut count)?;
        let b_sent = send(b, sb, a, sa, &mut count)?;
        if !a_sent && !b_sent {
            break;
        }
    }
    Ok(Exchange {
        time: started.elapsed(),
        bytes: count.0,
        messages: count.1,
    })
}

/// A reconnect: each side keeps only what automerge persists of a sync state.
fn reconnect(s: &sync::State) -> Result<sync::State> {
    Ok(sync::State::decode(&s.encode())?)
}

/// Builds the writer's document from `ops`, syncs a fresh one, then one and 100 new
/// notes (`extra(i)`) after reconnects.
pub(crate) fn run(ops: &[Operation], extra: impl Fn(usize) -> Operation) -> Result<Figures> {
    let started = Instant::now();
    let mut writer = Automerge::new();
    for (n, op) in ops.iter().enumerate() {
        commit(&mut writer, op, n as u64)?;
    }
    let build = started.elapsed();
    let mut reader = Automerge::new();
    let (mut sw, mut sr) = (sync::State::new(), sync::State::new());
    let initial = exchange(&mut writer, &mut sw, &mut reader, &mut sr)?;
    let mut n = ops.len() as u64;
    commit(&mut writer, &extra(0), n)?;
    n += 1;
    let (mut sw, mut sr) = (reconnect(&sw)?, reconnect(&sr)?);
    let one_new = exchange(&mut writer, &mut sw, &mut reader, &mut sr)?;
    for i in 0..100 {
        commit(&mut writer, &extra(1 + i), n)?;
        n += 1;
    }
    let (mut sw, mut sr) = (reconnect(&sw)?, reconnect(&sr)?);
    let hundred_new = exchange(&mut writer, &mut sw, &mut reader, &mut sr)?;
    anyhow::ensure!(
        reader.get_heads() == writer.get_heads(),
        "automerge: the reader did not converge"
    );
    Ok(Figures {
        build,
        initial,
        one_new,
        hundred_new,
    })
}
