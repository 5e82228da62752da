//! `caucus notice`: sending meeting notices (urgent ones watched until acknowledged),
//! listing, showing, acknowledging and cancelling them.

use super::*;

/// `caucus notice …`.
pub(super) async fn notice(ctx: &mut Ctx, n: NoticeCmd) -> Result<()> {
    let json = ctx.json;
    match n {
        NoticeCmd::Send {
            title,
            at,
            place,
            body,
            urgent,
            expires_hours,
            group,
        } => {
            let g = ctx.group(&group)?;
            let starts = parse_time(&at)?;
            let id = NoticeId(random16());
            let content = NoticeContent {
                title,
                starts_at_ms: starts,
                place,
                body,
                urgent,
                expires_at_ms: Some(starts + expires_hours * 3_600_000),
            };
            let sent = Instant::now();
            ctx.write(
                &g,
                Operation::NoticePosted {
                    notice: id,
                    content,
                },
            )
            .await?;
            // With the node running, acknowledgements come back within moments: watch
            // the store for up to three seconds.
            let mut delivered = ctx.node().state(&g)?.current_members().count();
            let mut acked = 1;
            if ctx.running() && urgent {
                let deadline = Instant::now() + Duration::from_secs(3);
                loop {
                    if let Some((a, total)) = ctx.session.delivery(&g, &id).await? {
                        acked = a as usize;
                        delivered = total as usize;
                        if a >= total {
                            break;
                        }
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if json {
                println!(
                    "{}",
                    json!({"notice": hex::encode(id.0), "acked": acked, "members": delivered})
                );
            } else if ctx.running() {
                println!(
                    "notice {} sent{}: delivered to {acked} of {delivered} members ({} ms)",
                    out::short(&id.0),
                    if urgent { " (urgent)" } else { "" },
                    sent.elapsed().as_millis()
                );
            } else {
                println!(
                    "notice {} saved; it goes out when `caucus run` runs",
                    out::short(&id.0)
                );
            }
        }
        NoticeCmd::List { group } => {
            let g = ctx.group(&group)?;
            let rows = ctx.node().current_notices(&g)?;
            if json {
                let v: Vec<_> = rows.iter().map(|r| json!({"notice": hex::encode(r.notice.id.0), "title": r.notice.title, "starts_at_ms": r.notice.starts_at_ms, "place": r.notice.place, "urgent": r.notice.urgent, "acked": r.delivery.acked, "members": r.delivery.total})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            out::short(&r.notice.id.0),
                            if r.notice.urgent { "URGENT" } else { "" }.into(),
                            out::time(r.notice.starts_at_ms),
                            r.notice.place.clone(),
                            r.notice.title.clone(),
                            format!("{}/{}", r.delivery.acked, r.delivery.total),
                        ]
                    })
                    .collect();
                out::table(&["id", "", "when", "where", "title", "acked"], &t);
            }
        }
        NoticeCmd::Show { id, group } => {
            let g = ctx.group(&group)?;
            let nid = ctx.node().find_notice(&g, &id)?;
            let state = ctx.node().state(&g)?;
            let n = state.notice(&nid).context("notice not found")?;
            let d = ctx
                .node()
                .delivery(&g, &nid)
                .unwrap_or(caucus_model::Delivery { acked: 0, total: 0 });
            if json {
                println!(
                    "{}",
                    json!({"notice": hex::encode(nid.0), "title": n.content.title, "starts_at_ms": n.content.starts_at_ms, "place": n.content.place, "body": n.content.body, "urgent": n.content.urgent, "cancelled": n.cancelled.is_some(), "acked": d.acked, "members": d.total})
                );
            } else {
                println!(
                    "{}{}",
                    n.content.title,
                    if n.content.urgent { "  [URGENT]" } else { "" }
                );
                println!("  when  {}", out::time(n.content.starts_at_ms));
                println!("  where {}", n.content.place);
                if !n.content.body.is_empty() {
                    println!("  {}", n.content.body);
                }
                println!("  acknowledged by {} of {} members", d.acked, d.total);
            }
        }
        NoticeCmd::Ack { id, group } => {
            let g = ctx.group(&group)?;
            let nid = ctx.node().find_notice(&g, &id)?;
            ctx.write(&g, Operation::NoticeAcked { notice: nid })
                .await?;
            println!("notice {} acknowledged", out::short(&nid.0));
        }
        NoticeCmd::Cancel { id, group } => {
            let g = ctx.group(&group)?;
            let nid = ctx.node().find_notice(&g, &id)?;
            ctx.write(&g, Operation::NoticeCancelled { notice: nid })
                .await?;
            println!("notice {} cancelled", out::short(&nid.0));
        }
    }
    Ok(())
}
