//! What `goalctl` prints: goals, pages, activities, progress and statistics as readable tables,
//! or as JSON (the model's own serde form) with `--json`; written through `std::io::Write`, so a
//! reader that goes away ends the output quietly instead of panicking.

use anyhow::Context;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use goalstore::{Activity, Goal, Page, Progress, Target};
use goalstore_proto::v1 as pb;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

/// Writes `text` and a newline to stdout; a reader that went away ends the output quietly.
pub(crate) fn emit(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("writing to stdout")
        }
        _ => Ok(()),
    }
}

/// Writes `value` as pretty JSON: model values in their serde form (the table's attribute names).
pub(crate) fn emit_json<T: serde::Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    emit(&serde_json::to_string_pretty(value).context("encoding JSON")?)
}

/// A two-column table of names and values.
pub(crate) fn key_values() -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED);
    table
}

fn columns(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(header);
    table
}

fn number(value: f64) -> String {
    // f64's Display prints the shortest text that reads back exactly: 42.5, 100, 0.1.
    value.to_string()
}

pub(crate) fn with_unit(value: f64, unit: &Option<String>) -> String {
    match unit {
        Some(unit) if !unit.is_empty() => format!("{} {unit}", number(value)),
        _ => number(value),
    }
}

fn target_text(target: &Target) -> String {
    let mut text = match target.value {
        Some(value) => with_unit(value, &target.unit),
        None => "-".to_owned(),
    };
    if let Some(period) = target.period {
        text.push_str(&format!(" per {period}"));
    }
    text
}

fn percent(progress: &Progress) -> String {
    format!("{:.1}%", progress.percent_complete)
}

pub(crate) fn show_goal(json: bool, goal: &Goal) -> anyhow::Result<()> {
    if json {
        return emit_json(goal);
    }
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let mut table = key_values();
    let rows: Vec<(&str, String)> = vec![
        ("goal", goal.goal_id.clone()),
        ("user", goal.user_id.clone()),
        ("title", goal.title.clone()),
        ("pattern", goal.goal_pattern.to_string()),
        ("status", goal.status.to_string()),
        ("category", optional(&goal.category)),
        ("metric", goal.target.metric.clone()),
        ("target", target_text(&goal.target)),
        ("progress", percent(&goal.progress)),
        ("created at", goal.created_at.to_string()),
        ("updated at", goal.updated_at.to_string()),
    ];
    for (name, value) in rows {
        table.add_row(vec![name.to_owned(), value]);
    }
    if let Some(archived_at) = &goal.archived_at {
        table.add_row(vec!["archived at".to_owned(), archived_at.to_string()]);
    }
    if let Some(completed_at) = &goal.completed_at {
        table.add_row(vec!["completed at".to_owned(), completed_at.to_string()]);
    }
    emit(&table.to_string())
}

pub(crate) fn show_goals(json: bool, page: &Page<Goal>) -> anyhow::Result<()> {
    if json {
        return emit_json(&json!({
            "goals": page.items,
            "next_page_token": page.next_page_token,
        }));
    }
    if page.items.is_empty() {
        emit("no goals")?;
    } else {
        let mut table = columns(&[
            "goal", "title", "pattern", "status", "category", "target", "progress",
        ]);
        for goal in &page.items {
            table.add_row(vec![
                goal.goal_id.clone(),
                goal.title.clone(),
                goal.goal_pattern.to_string(),
                goal.status.to_string(),
                goal.category.clone().unwrap_or_default(),
                target_text(&goal.target),
                percent(&goal.progress),
            ]);
        }
        emit(&table.to_string())?;
    }
    if let Some(token) = &page.next_page_token {
        emit(&format!("more: --page-token {token}"))?;
    }
    Ok(())
}

pub(crate) fn show_activities(json: bool, page: &Page<Activity>) -> anyhow::Result<()> {
    if json {
        return emit_json(&json!({
            "activities": page.items,
            "next_page_token": page.next_page_token,
        }));
    }
    if page.items.is_empty() {
        emit("no activities")?;
    } else {
        let mut table = columns(&[
            "activity",
            "type",
            "value",
            "activity date",
            "logged at",
            "note",
        ]);
        for a in &page.items {
            table.add_row(vec![
                a.activity_id.clone(),
                a.activity_type.to_string(),
                with_unit(a.value, &a.unit),
                a.activity_date.to_string(),
                a.logged_at.to_string(),
                a.note.clone().unwrap_or_default(),
            ]);
        }
        emit(&table.to_string())?;
    }
    if let Some(token) = &page.next_page_token {
        emit(&format!("more: --page-token {token}"))?;
    }
    Ok(())
}

pub(crate) fn progress_table(progress: &Progress) -> Table {
    let mut table = key_values();
    table.add_row(vec!["percent complete".to_owned(), percent(progress)]);
    let numbers = [
        ("total accumulated", progress.total_accumulated),
        ("remaining to goal", progress.remaining_to_goal),
        ("current period value", progress.current_period_value),
        ("average value", progress.average_value),
        ("success rate", progress.success_rate),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            table.add_row(vec![name.to_owned(), number(value)]);
        }
    }
    table.add_row(vec![
        "streak (current / longest)".to_owned(),
        format!("{} / {}", progress.current_streak, progress.longest_streak),
    ]);
    if let Some(target) = progress.target_streak {
        table.add_row(vec!["target streak".to_owned(), target.to_string()]);
    }
    if let Some(days) = progress.days_over_limit {
        table.add_row(vec!["days over limit".to_owned(), days.to_string()]);
    }
    if let Some(trend) = progress.trend {
        table.add_row(vec!["trend".to_owned(), trend.to_string()]);
    }
    let times = [
        ("last activity", &progress.last_activity_date),
        ("projected completion", &progress.projected_completion),
    ];
    for (name, value) in times {
        if let Some(value) = value {
            table.add_row(vec![name.to_owned(), value.to_string()]);
        }
    }
    if !progress.period_history.is_empty() {
        table.add_row(vec![
            "periods (achieved / recorded)".to_owned(),
            format!(
                "{} / {}",
                progress
                    .period_history
                    .iter()
                    .filter(|p| p.achieved)
                    .count(),
                progress.period_history.len()
            ),
        ]);
    }
    table
}

pub(crate) fn show_stats(json: bool, stats: &pb::StatsResponse) -> anyhow::Result<()> {
    let table_usage = stats.table.unwrap_or_default();
    if json {
        let lookups: Vec<Value> = stats
            .lookups
            .iter()
            .map(|l| {
                json!({
                    "tier": l.tier,
                    "kind": l.kind,
                    "hits": l.hits,
                    "misses": l.misses,
                    "hit_ratio": l.hit_ratio,
                })
            })
            .collect();
        return emit_json(&json!({
            "cache_strategy": stats.cache_strategy,
            "degraded": stats.degraded,
            "uptime_seconds": stats.uptime_seconds,
            "lookups": lookups,
            "fills": stats.fills,
            "fills_refused": stats.fills_refused,
            "invalidations": stats.invalidations,
            "decode_failures": stats.decode_failures,
            "redis_errors": stats.redis_errors,
            "local_entries": stats.local_entries,
            "local_weight_bytes": stats.local_weight_bytes,
            "local_purges": stats.local_purges,
            "messages_published": stats.messages_published,
            "messages_received": stats.messages_received,
            "flights_in_progress": stats.flights_in_progress,
            "local_leases_held": stats.local_leases_held,
            "consistency_checks_consistent": stats.consistency_checks_consistent,
            "consistency_checks_stale": stats.consistency_checks_stale,
            "table": {
                "get_item": table_usage.get_item,
                "batch_get_item": table_usage.batch_get_item,
                "put_item": table_usage.put_item,
                "transact_write_items": table_usage.transact_write_items,
                "query": table_usage.query,
                "throttled": table_usage.throttled,
                "read_units": table_usage.read_units,
                "write_units": table_usage.write_units,
            },
        }));
    }
    let mut summary = key_values();
    let rows: Vec<(&str, String)> = vec![
        ("cache strategy", stats.cache_strategy.clone()),
        ("degraded", stats.degraded.to_string()),
        (
            "uptime",
            humantime::format_duration(Duration::from_secs(stats.uptime_seconds)).to_string(),
        ),
        ("fills", stats.fills.to_string()),
        ("fills refused", stats.fills_refused.to_string()),
        ("decode failures", stats.decode_failures.to_string()),
        ("redis errors", stats.redis_errors.to_string()),
        ("local entries", stats.local_entries.to_string()),
        ("local weight (bytes)", stats.local_weight_bytes.to_string()),
        ("local purges", stats.local_purges.to_string()),
        ("messages published", stats.messages_published.to_string()),
        ("messages received", stats.messages_received.to_string()),
        ("fills in progress", stats.flights_in_progress.to_string()),
        ("local leases held", stats.local_leases_held.to_string()),
        (
            "consistency checks (consistent / stale)",
            format!(
                "{} / {}",
                stats.consistency_checks_consistent, stats.consistency_checks_stale
            ),
        ),
    ];
    for (name, value) in rows {
        summary.add_row(vec![name.to_owned(), value]);
    }
    let mut invalidations: Vec<(&String, &u64)> = stats.invalidations.iter().collect();
    invalidations.sort();
    for (event, count) in invalidations {
        summary.add_row(vec![format!("invalidated by {event}"), count.to_string()]);
    }
    emit(&summary.to_string())?;

    if !stats.lookups.is_empty() {
        let mut lookups = columns(&["tier", "kind", "hits", "misses", "hit ratio"]);
        for l in &stats.lookups {
            lookups.add_row(vec![
                l.tier.clone(),
                l.kind.clone(),
                l.hits.to_string(),
                l.misses.to_string(),
                format!("{:.1}%", l.hit_ratio * 100.0),
            ]);
        }
        emit(&lookups.to_string())?;
    }

    let mut usage = columns(&[
        "get item",
        "batch get",
        "put item",
        "transact write",
        "query",
        "throttled",
        "read units",
        "write units",
    ]);
    usage.add_row(vec![
        table_usage.get_item.to_string(),
        table_usage.batch_get_item.to_string(),
        table_usage.put_item.to_string(),
        table_usage.transact_write_items.to_string(),
        table_usage.query.to_string(),
        table_usage.throttled.to_string(),
        number(table_usage.read_units),
        number(table_usage.write_units),
    ]);
    emit(&usage.to_string())
}
