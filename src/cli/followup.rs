//! `caucus followup`: planning follow-ups, marking them done, what is due.

use super::*;

/// `caucus followup …`.
pub(super) async fn followup(ctx: &mut Ctx, f: FollowupCmd) -> Result<()> {
    let json = ctx.json;
    match f {
        FollowupCmd::Add {
            contact,
            due,
            task,
            assignee,
            group,
        } => {
            let g = ctx.group(&group)?;
            let due = parse_day(&due)?;
            let cid = ctx.node().find_contact(&g, &contact)?;
            let id = FollowupId(random16());
            let assignee = assignee.unwrap_or_else(|| ctx.node().name().to_owned());
            ctx.write(
                &g,
                Operation::FollowupSet {
                    followup: id,
                    contact: cid,
                    due,
                    assignee,
                    task,
                },
            )
            .await?;
            if json {
                println!("{}", json!({"followup": hex::encode(id.0)}));
            } else {
                println!("follow-up {} due {}", out::short(&id.0), out::day(due));
            }
        }
        FollowupCmd::Done { id, group } => {
            let g = ctx.group(&group)?;
            let fid = &ctx.node().find_followup(&g, &id)?;
            ctx.write(
                &g,
                Operation::FollowupDone {
                    followup: *fid,
                    done: true,
                },
            )
            .await?;
            println!("follow-up {} done", out::short(&fid.0));
        }
        FollowupCmd::List { days, group } => {
            let g = ctx.group(&group)?;
            let rows = ctx.node().followups_due(&g, days)?;
            if json {
                let v: Vec<_> = rows.iter().map(|r| json!({"followup": hex::encode(r.followup.id.0), "contact": hex::encode(r.followup.contact.0), "contact_name": r.contact_name, "due": out::day(r.followup.due), "assignee": r.followup.assignee, "task": r.followup.task, "overdue": r.overdue})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            out::short(&r.followup.id.0),
                            out::day(r.followup.due),
                            if r.overdue { "OVERDUE" } else { "" }.into(),
                            r.contact_name.clone(),
                            r.followup.assignee.clone(),
                            r.followup.task.clone(),
                        ]
                    })
                    .collect();
                out::table(&["id", "due", "", "contact", "who", "task"], &t);
            }
        }
    }
    Ok(())
}
