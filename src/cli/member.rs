//! `caucus member`: listing members, removing one, changing a role.

use super::*;

/// `caucus member …`.
pub(super) async fn member(ctx: &mut Ctx, cmd: MemberCmd) -> Result<()> {
    let json = ctx.json;
    match cmd {
        MemberCmd::List { group } => {
            let g = ctx.group(&group)?;
            let members = ctx.node().members(&g)?;
            if json {
                let v: Vec<_> = members.iter().map(|m| json!({"member": hex::encode(m.identity.0), "name": m.name, "role": role_name(m.role), "current": m.current})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let rows: Vec<Vec<String>> = members
                    .iter()
                    .filter(|m| m.current)
                    .map(|m| {
                        vec![
                            out::short(&m.identity.0),
                            m.name.clone(),
                            role_name(m.role).into(),
                        ]
                    })
                    .collect();
                out::table(&["member", "name", "role"], &rows);
            }
        }
        MemberCmd::Remove { member, group } => {
            let g = ctx.group(&group)?;
            let m = ctx.node().find_member(&g, &member)?;
            let removal = ctx.node().member_removal(&g, &m)?;
            ctx.write(&g, removal).await?;
            let epoch = rotate(ctx, &g).await?;
            if json {
                println!("{}", json!({"removed": hex::encode(m.0), "epoch": epoch}));
            } else {
                println!(
                    "removed {member}; group moved to epoch {epoch}: they cannot read anything written from now on"
                );
            }
        }
        MemberCmd::Role {
            member,
            role,
            group,
        } => {
            let g = ctx.group(&group)?;
            let m = ctx.node().find_member(&g, &member)?;
            let role = match role.to_lowercase().as_str() {
                "admin" => Role::Admin,
                "organizer" => Role::Organizer,
                _ => bail!("role must be admin or organizer"),
            };
            let change = ctx.node().role_change(&g, &m, role)?;
            ctx.write(&g, change).await?;
            println!("{member} is now {}", role_name(role));
        }
    }
    Ok(())
}
