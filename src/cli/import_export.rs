//! `caucus import` and `caucus export`: the organizers' spreadsheets in and out (the
//! node reads, checks and packs them; this prints and writes the files).

use super::*;

/// `caucus import`: the node checks and packs the files; written all or nothing.
pub(super) async fn import(
    ctx: &mut Ctx,
    contacts: &Path,
    notes: Option<&Path>,
    group: &GroupArg,
) -> Result<()> {
    let g = ctx.group(group)?;
    let mut cf = std::fs::File::open(contacts).with_context(|| contacts.display().to_string())?;
    let mut nf = match notes {
        Some(p) => Some(std::fs::File::open(p).with_context(|| p.display().to_string())?),
        None => None,
    };
    let bar = indicatif::ProgressBar::new(0);
    if ctx.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("reading");
    let import = ctx.node().prepare_import(
        &g,
        &mut cf,
        nf.as_mut().map(|f| f as &mut dyn std::io::Read),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    )?;
    let (nc, nn) = (import.contacts, import.notes);
    let ops = import.operations;
    bar.set_message("sealing and storing");
    bar.set_length(ops.len() as u64);
    bar.set_position(0);
    let total = ops.len();
    // All-or-nothing: checked in full above, then sealed and stored in one transaction.
    ctx.write_many(&g, ops, &mut |done, of| {
        bar.set_length(of);
        bar.set_position(done);
    })
    .await?;
    bar.finish_and_clear();
    if ctx.json {
        println!("{}", json!({"contacts": nc, "notes": nn, "entries": total}));
    } else {
        println!("imported {nc} contacts and {nn} notes ({total} entries)");
    }
    Ok(())
}

/// `caucus export`: writes the two files, never over an existing one.
pub(super) fn export(ctx: &mut Ctx, contacts: &Path, notes: &Path, group: &GroupArg) -> Result<()> {
    let json = ctx.json;

    let g = ctx.group(group)?;
    let export = ctx.node().export_spreadsheets(&g)?;
    write_new(contacts, &export.contacts_csv)?;
    write_new(notes, &export.notes_csv)?;
    if json {
        println!(
            "{}",
            json!({"contacts": export.contacts, "notes": export.notes})
        );
    } else {
        println!(
            "exported {} contacts to {} and {} notes to {} (plain text: keep these files safe)",
            export.contacts,
            contacts.display(),
            export.notes,
            notes.display()
        );
    }

    Ok(())
}

/// Writes a file that must not exist yet (an export never overwrites).
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("{} (an export never overwrites a file)", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
