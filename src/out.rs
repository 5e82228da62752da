//! Human output: tables, bars, QR codes, dates. `--json` output is built in `cli` with
//! `serde_json` and documented field names (see README, "JSON output").

use caucus_model::{RatingCounts, WorkplaceMap};
use caucus_proto::Day;
use std::collections::BTreeSet;

/// Prints rows as a left-aligned table with a header.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count().min(60));
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let c: String = c.chars().take(60).collect();
            if i + 1 == cells.len() {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// `YYYY-MM-DD`.
pub(crate) fn day(d: Day) -> String {
    let (y, m, dd) = d.ymd();
    format!("{y:04}-{m:02}-{dd:02}")
}

/// `YYYY-MM-DD HH:MM UTC` from Unix milliseconds.
pub(crate) fn time(ms: u64) -> String {
    let d = Day::from_unix_ms(ms);
    let secs_of_day = (ms / 1000) % 86_400;
    format!(
        "{} {:02}:{:02} UTC",
        day(d),
        secs_of_day / 3600,
        (secs_of_day / 60) % 60
    )
}

/// A short hex id.
pub(crate) fn short(bytes: &[u8]) -> String {
    hex::encode(&bytes[..bytes.len().min(4)])
}

/// Glyphs for ratings 1 (leader) to 5 (opposed).
const GLYPHS: [char; 5] = ['█', '▓', '▒', '░', '·'];

fn bar(counts: &RatingCounts, scale: f64) -> String {
    let mut s = String::new();
    for (glyph, n) in GLYPHS.iter().zip(counts.by_rating) {
        let len = (f64::from(n) * scale).ceil() as usize;
        s.extend(std::iter::repeat_n(*glyph, len));
    }
    s
}

/// The workplace map: departments down, shifts across, one bar per cell by rating.
pub(crate) fn map(map: &WorkplaceMap) {
    let shifts: BTreeSet<&String> = map.by_shift.keys().collect();
    let biggest = map
        .cells
        .values()
        .flat_map(|row| row.values())
        .map(RatingCounts::total)
        .max()
        .unwrap_or(0);
    // At most 24 marks a cell.
    let scale = if biggest > 24 {
        24.0 / f64::from(biggest)
    } else {
        1.0
    };
    let dept_w = map
        .cells
        .keys()
        .map(|d| d.chars().count())
        .max()
        .unwrap_or(4)
        .max(10);
    print!("{:<dept_w$}  ", "department");
    for shift in &shifts {
        print!("{:<30}", shift);
    }
    println!("supportive");
    for (dept, row) in &map.cells {
        print!("{dept:<dept_w$}  ");
        for shift in &shifts {
            let cell = row.get(*shift).copied().unwrap_or_default();
            let b = bar(&cell, scale);
            // At most 24 marks, plus one rounded up per rating: under 30.
            let w = 30usize.saturating_sub(b.chars().count());
            print!("{b}{:w$}", "");
        }
        let total = map.by_department.get(dept).copied().unwrap_or_default();
        println!("{} of {}", total.supportive(), total.total());
    }
    println!("█ 1 leader  ▓ 2 supporter  ▒ 3 undecided  ░ 4 leaning against  · 5 opposed");
    if scale < 1.0 {
        println!("(one mark ≈ {:.0} contacts)", 1.0 / scale);
    }
}

/// A QR code of `payload` in terminal half-blocks.
pub(crate) fn qr(payload: &str) {
    use qrcode::{Color, EcLevel, QrCode};
    let Ok(code) = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::L) else {
        return;
    };
    let w = code.width();
    let colors = code.to_colors();
    let dark = |x: isize, y: isize| -> bool {
        if x < 0 || y < 0 || x as usize >= w || y as usize >= w {
            return false;
        }
        colors[y as usize * w + x as usize] == Color::Dark
    };
    let w = w as isize;
    let mut y = -2;
    while y < w + 2 {
        let mut line = String::new();
        for x in -2..w + 2 {
            line.push(match (dark(x, y), dark(x, y + 1)) {
                (true, true) => ' ',
                (true, false) => '▄',
                (false, true) => '▀',
                (false, false) => '█',
            });
        }
        println!("{line}");
        y += 2;
    }
}
