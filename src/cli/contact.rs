//! `caucus contact` and `caucus map`: the contact log, one contact with its notes, and
//! support by department and shift.

use super::*;

/// `caucus contact …`.
pub(super) async fn contact(ctx: &mut Ctx, c: ContactCmd) -> Result<()> {
    let json = ctx.json;
    match c {
        ContactCmd::Add { fields: f, group } => {
            let g = ctx.group(&group)?;
            if f.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                bail!("a contact needs --name");
            }
            let id = ContactId(random16());
            let fs = fields(&f)?;
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: id,
                    fields: fs,
                },
            )
            .await?;
            if json {
                println!("{}", json!({"contact": hex::encode(id.0)}));
            } else {
                println!("contact {} logged", hex::encode(&id.0[..4]));
            }
        }
        ContactCmd::Edit {
            id,
            fields: f,
            group,
        } => {
            let g = ctx.group(&group)?;
            let cid = ctx.node().find_contact(&g, &id)?;
            let fs = fields(&f)?;
            if fs.is_empty() {
                bail!("nothing to change: give at least one field (--name, --dept, --rating …)");
            }
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: cid,
                    fields: fs,
                },
            )
            .await?;
            println!("contact {} updated", out::short(&cid.0));
        }
        ContactCmd::Rate {
            id,
            rating: r,
            group,
        } => {
            let g = ctx.group(&group)?;
            let r = rating(r)?;
            let cid = ctx.node().find_contact(&g, &id)?;
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: cid,
                    fields: vec![ContactField::Rating(r)],
                },
            )
            .await?;
            println!("contact {} rated {}", out::short(&cid.0), r.get());
        }
        ContactCmd::Tag {
            id,
            tag,
            off,
            group,
        } => {
            let g = ctx.group(&group)?;
            let cid = ctx.node().find_contact(&g, &id)?;
            ctx.write(
                &g,
                Operation::ContactSet {
                    contact: cid,
                    fields: vec![ContactField::Tag { tag, on: !off }],
                },
            )
            .await?;
            println!("contact {} tagged", out::short(&cid.0));
        }
        ContactCmd::Note {
            id,
            text,
            date,
            group,
        } => {
            let g = ctx.group(&group)?;
            let date = date.as_deref().map(parse_day).transpose()?;
            let cid = ctx.node().find_contact(&g, &id)?;
            if text.trim().is_empty() {
                bail!("the note is empty");
            }
            let e = ctx
                .write(
                    &g,
                    Operation::NoteAdded {
                        contact: cid,
                        note: Note {
                            text,
                            date,
                            by: None,
                        },
                    },
                )
                .await?;
            if json {
                println!("{}", json!({"note": hex::encode(e.0)}));
            } else {
                println!("note added to {}", out::short(&cid.0));
            }
        }
        ContactCmd::Show { id, group } => {
            let g = ctx.group(&group)?;
            let cid = ctx.node().find_contact(&g, &id)?;
            let d = ctx
                .node()
                .contact_detail(&g, &cid)?
                .context("contact not found")?;
            let c = &d.contact;
            if json {
                println!(
                    "{}",
                    json!({"contact": contact_json(c), "notes": d.notes.iter().map(|n| json!({"note": hex::encode(n.entry.0), "day": out::day(n.day), "by": n.by, "text": n.text})).collect::<Vec<_>>()})
                );
            } else {
                println!("{} ({})", c.name, hex::encode(c.id.0));
                println!(
                    "  department {}  shift {}  job {}",
                    c.department, c.shift, c.job
                );
                println!(
                    "  phone {}  rating {}  assigned {}",
                    c.handle,
                    c.rating.map_or("-".into(), |r| r.get().to_string()),
                    c.assigned_to
                );
                let tags: Vec<&str> = c.tags_on().collect();
                println!("  tags {}", tags.join(", "));
                for n in &d.notes {
                    println!("  {}  {}", out::day(n.day), n.text);
                }
            }
        }
        ContactCmd::List {
            dept,
            shift,
            rating: r,
            tag,
            assignee,
            text,
            group,
        } => {
            let g = ctx.group(&group)?;
            let mut f = ContactFilter::all();
            if let Some(x) = dept {
                f = f.department(x);
            }
            if let Some(x) = shift {
                f = f.shift(x);
            }
            if let Some(x) = r {
                f = f.rating(match x.as_str() {
                    "unrated" => RatingFilter::Unrated,
                    "supportive" => RatingFilter::Supportive,
                    n => RatingFilter::Is(rating(
                        n.parse()
                            .map_err(|_| anyhow!("--rating takes 1-5, unrated or supportive"))?,
                    )?),
                });
            }
            if let Some(x) = tag {
                f = f.tag(x);
            }
            if let Some(x) = assignee {
                f = f.assignee(x);
            }
            if let Some(x) = text {
                f = f.text(x);
            }
            let rows = ctx.node().contacts(&g, &f)?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(rows.iter().map(contact_json).collect())
                );
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|c| {
                        vec![
                            out::short(&c.id.0),
                            c.name.clone(),
                            c.department.clone(),
                            c.shift.clone(),
                            c.rating.map_or("-".into(), |r| r.get().to_string()),
                            c.tags_on().collect::<Vec<_>>().join(","),
                            c.assigned_to.clone(),
                        ]
                    })
                    .collect();
                out::table(
                    &["id", "name", "dept", "shift", "rating", "tags", "assigned"],
                    &t,
                );
                println!("{} contacts", rows.len());
            }
        }
        ContactCmd::Remove { id, group } => {
            let g = ctx.group(&group)?;
            let cid = ctx.node().find_contact(&g, &id)?;
            ctx.write(&g, Operation::ContactRemoved { contact: cid })
                .await?;
            println!("contact {} removed", out::short(&cid.0));
        }
    }
    Ok(())
}

/// The stable JSON form of a contact (field names pinned by a test).
fn contact_json(c: &caucus_node::views::ContactRow) -> serde_json::Value {
    json!({
        "id": hex::encode(c.id.0),
        "name": c.name,
        "department": c.department,
        "shift": c.shift,
        "job": c.job,
        "phone": c.handle,
        "rating": c.rating.map(Rating::get),
        "tags": c.tags_on().collect::<Vec<_>>(),
        "assigned_to": c.assigned_to,
    })
}

/// `caucus map`.
pub(super) fn map(ctx: &mut Ctx, group: &GroupArg) -> Result<()> {
    let json = ctx.json;

    let g = ctx.group(group)?;
    let map = ctx.node().workplace_map(&g)?;
    let share = ctx.node().support_share(&g)?;
    if json {
        let cells: Vec<_> = map.cells.iter().flat_map(|(d, row)| row.iter().map(move |(s, c)| json!({"department": d, "shift": s, "by_rating": c.by_rating, "unrated": c.unrated}))).collect();
        println!(
            "{}",
            json!({"cells": cells, "supportive": share.supportive, "base": share.base.count(), "percent": share.percent(), "target_percent": share.target_percent, "still_needed": share.still_needed()})
        );
    } else {
        out::map(&map);
        print!(
            "support: {} of {} = {:.1}%",
            share.supportive,
            share.base.count(),
            share.percent()
        );
        match (share.target_percent, share.still_needed()) {
            (Some(t), Some(0)) => println!(", target {t}% met"),
            (Some(t), Some(n)) => println!(", target {t}%: {n} more supporters needed"),
            _ => println!(" (set a headcount and target with `caucus group campaign`)"),
        }
    }

    Ok(())
}
