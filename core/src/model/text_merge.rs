//! Turning an editor's "the text was `base`, now it is `new`" into splices of the shared
//! text, even when others' typing changed the shared text meanwhile.
//!
//! An editor (the desktop app's notes field) does not speak Automerge: it knows the text
//! it last showed (`base`) and what the person made of it (`new`). [`splice_between`] finds
//! the one region that changed (keeping the longest common start and end). If the shared
//! text is no longer `base` because someone else's typing arrived first, [`rebase`] moves
//! the local splice past their change — the same idea as operational transformation, for
//! one splice on each side. Positions count Unicode code points, as Automerge's text does
//! here.

/// One edit of a text: at code point `pos`, delete `delete` code points, insert `insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// Where, in code points.
    pub pos: usize,
    /// How many code points to delete.
    pub delete: usize,
    /// What to insert there.
    pub insert: String,
}

/// The one splice that turns `from` into `to`, or `None` if they are equal.
pub fn splice_between(from: &str, to: &str) -> Option<Splice> {
    if from == to {
        return None;
    }
    let a: Vec<char> = from.chars().collect();
    let b: Vec<char> = to.chars().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let max_suffix = a.len().min(b.len()) - prefix;
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take(max_suffix)
        .take_while(|(x, y)| x == y)
        .count();
    Some(Splice {
        pos: prefix,
        delete: a.len() - prefix - suffix,
        insert: b[prefix..b.len() - suffix].iter().collect(),
    })
}

/// Longest changed stretch (code points, on each side) that is diffed region by region;
/// past it, someone else's edit counts as one region (bounded work for a big paste).
const MAX_DIFFED: usize = 4_000;

/// Someone else's edit of `base` into `current` as the regions that changed, in `base`'s
/// positions, left to right, none touching the next. Typing in two places is two
/// regions, so an edit made between them stays where it was made.
fn remote_regions(base: &str, current: &str) -> Vec<Splice> {
    let Some(whole) = splice_between(base, current) else {
        return Vec::new();
    };
    let old: Vec<char> = base.chars().skip(whole.pos).take(whole.delete).collect();
    let new: Vec<char> = whole.insert.chars().collect();
    if old.is_empty() || new.is_empty() || old.len() > MAX_DIFFED || new.len() > MAX_DIFFED {
        return vec![whole];
    }
    let mut out: Vec<Splice> = Vec::new();
    for op in similar::capture_diff_slices(similar::Algorithm::Myers, &old, &new) {
        let (at, deleted, from, inserted) = match op {
            similar::DiffOp::Equal { .. } => continue,
            similar::DiffOp::Delete {
                old_index,
                old_len,
                new_index,
            } => (old_index, old_len, new_index, 0),
            similar::DiffOp::Insert {
                old_index,
                new_index,
                new_len,
            } => (old_index, 0, new_index, new_len),
            similar::DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => (old_index, old_len, new_index, new_len),
        };
        let insert: String = new[from..from + inserted].iter().collect();
        let pos = whole.pos + at;
        match out.last_mut() {
            Some(last) if last.pos + last.delete == pos => {
                last.delete += deleted;
                last.insert.push_str(&insert);
            }
            _ => out.push(Splice {
                pos,
                delete: deleted,
                insert,
            }),
        }
    }
    out
}

/// How `local` stands to a remote region `remote` (both in `base`'s positions).
#[derive(PartialEq)]
enum Side {
    /// Wholly before it: the region changes nothing for it.
    Before,
    /// Wholly after it: it moves by what the region grew.
    After,
    /// They overlap, or both typed at one place.
    Touching,
}

fn side(local: &Splice, remote: &Splice) -> Side {
    let (p, d, rp, rd) = (local.pos, local.delete, remote.pos, remote.delete);
    if p == rp && d == 0 {
        Side::Touching
    } else if p + d <= rp {
        Side::Before
    } else if p >= rp + rd {
        Side::After
    } else {
        Side::Touching
    }
}

fn growth(s: &Splice) -> isize {
    s.insert.chars().count() as isize - s.delete as isize
}

/// Splices that make `local` (made against `base`) apply to `current`, which is `base`
/// with others' edits. Apply them in the order given. Others' edits are found region by
/// region: `local` moves past those before it and is untouched by those after it. Where
/// it meets one — both deleted the same text, it stays deleted once; both typed at the
/// same place, the other's text comes first and this one's after it — nobody's words are
/// lost.
pub fn rebase(base: &str, current: &str, local: &Splice) -> Vec<Splice> {
    let regions = remote_regions(base, current);
    let sides: Vec<Side> = regions.iter().map(|r| side(local, r)).collect();
    let shift: isize = regions
        .iter()
        .zip(&sides)
        .filter(|(_, s)| **s == Side::After)
        .map(|(r, _)| growth(r))
        .sum();
    let moved = |s: Splice| Splice {
        pos: (s.pos as isize + shift).max(0) as usize,
        ..s
    };
    let touching: Vec<&Splice> = regions
        .iter()
        .zip(&sides)
        .filter(|(_, s)| **s == Side::Touching)
        .map(|(r, _)| r)
        .collect();
    let (Some(first), Some(last)) = (touching.first(), touching.last()) else {
        return vec![moved(local.clone())];
    };
    // The regions it meets (next to each other: anything between them meets it too), as
    // one region of `current`.
    let start = first.pos;
    let end = last.pos + last.delete;
    let grown: isize = touching.iter().map(|r| growth(r)).sum();
    let from = (start as isize + shift) as usize;
    let len = ((end - start) as isize + grown) as usize;
    let remote = Splice {
        pos: start,
        delete: end - start,
        insert: current.chars().skip(from).take(len).collect(),
    };
    rebase_one(&remote, local).into_iter().map(moved).collect()
}

/// [`rebase`] against one remote region that `local` meets.
fn rebase_one(remote: &Splice, local: &Splice) -> Vec<Splice> {
    let (p, d) = (local.pos, local.delete);
    let (rp, rd) = (remote.pos, remote.delete);
    let grown = remote.insert.chars().count();
    // From a position in `base` at or after the remote region to one in `current`.
    let shifted = |i: usize| i + grown - rd;
    if p == rp && d == 0 {
        // Typed where they typed: after their text.
        return vec![Splice {
            pos: rp + grown,
            ..local.clone()
        }];
    }
    if p + d <= rp {
        return vec![local.clone()];
    }
    if p >= rp + rd {
        return vec![Splice {
            pos: shifted(p),
            ..local.clone()
        }];
    }
    // The two overlap. What local deleted inside their deleted region is gone already;
    // delete the rest on either side of it, and insert next to their text.
    let before = rp.saturating_sub(p).min(d);
    let after = (p + d).saturating_sub(rp + rd);
    let mut out = Vec::new();
    if after > 0 {
        out.push(Splice {
            pos: shifted(rp + rd),
            delete: after,
            insert: String::new(),
        });
    }
    let at = if p < rp { p } else { rp + grown };
    if before > 0 || !local.insert.is_empty() {
        out.push(Splice {
            pos: at,
            delete: before,
            insert: local.insert.clone(),
        });
    }
    out
}

/// Applies `splices` in order to `text` (for tests and for checking a rebase).
pub fn apply(text: &str, splices: &[Splice]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for s in splices {
        let end = (s.pos + s.delete).min(chars.len());
        let pos = s.pos.min(end);
        chars.splice(pos..end, s.insert.chars());
    }
    chars.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `base` edited locally into `mine` and remotely into `theirs`: the merged text.
    fn merge(base: &str, mine: &str, theirs: &str) -> String {
        let local = splice_between(base, mine).expect("a local edit");
        apply(theirs, &rebase(base, theirs, &local))
    }

    #[test]
    fn the_changed_region_is_found_between_common_ends() {
        assert_eq!(splice_between("same", "same"), None);
        assert_eq!(
            splice_between("Check-in round.", "Check-in round. Kim first."),
            Some(Splice {
                pos: 15,
                delete: 0,
                insert: " Kim first.".into()
            })
        );
        assert_eq!(
            splice_between("aXXb", "aYb"),
            Some(Splice {
                pos: 1,
                delete: 2,
                insert: "Y".into()
            })
        );
        // Repeated letters: the shortest change still comes out.
        assert_eq!(
            splice_between("aaa", "aaaa").map(|s| (s.delete, s.insert)),
            Some((0, "a".into()))
        );
        // Code points, not bytes.
        assert_eq!(splice_between("café", "cafés").map(|s| s.pos), Some(4));
    }

    #[test]
    fn edits_in_different_places_both_survive() {
        assert_eq!(
            merge("one two three", "one 2 two three", "one two three 3"),
            "one 2 two three 3"
        );
        assert_eq!(
            merge("one two three", "one two three 3", "one 2 two three"),
            "one 2 two three 3"
        );
        assert_eq!(merge("é to ü", "é to ü!", "¡é to ü"), "¡é to ü!");
    }

    /// Found by reading the old rebase: others typing in two places were one region, so
    /// an edit made between them landed after the second.
    #[test]
    fn an_edit_between_two_of_theirs_stays_where_it_was_made() {
        let base = "Agenda: check-in. Readings. Close.";
        let theirs = "Agenda: check-in (Kim). Readings. Close (Sam).";
        let mine = "Agenda: check-in. Readings: step 3. Close.";
        assert_eq!(
            merge(base, mine, theirs),
            "Agenda: check-in (Kim). Readings: step 3. Close (Sam)."
        );
        // And with my edit before or after both of theirs.
        assert_eq!(
            merge(base, "Our agenda: check-in. Readings. Close.", theirs),
            "Our agenda: check-in (Kim). Readings. Close (Sam)."
        );
        assert_eq!(
            merge(base, "Agenda: check-in. Readings. Close. End.", theirs),
            "Agenda: check-in (Kim). Readings. Close (Sam). End."
        );
        // My deletion spanning one of theirs deletes only what I saw: their words stay.
        assert_eq!(merge(base, "Agenda: Close.", theirs), "Agenda:  (Kim)Close (Sam).");
    }

    #[test]
    fn typing_at_the_same_place_keeps_both_theirs_first() {
        assert_eq!(merge("Notes:", "Notes: mine", "Notes: theirs"), "Notes: theirs mine");
    }

    #[test]
    fn overlapping_deletions_delete_once_and_keep_what_was_typed() {
        // They deleted "two ", I replaced "two three" with "2-3".
        assert_eq!(
            merge("one two three four", "one 2-3 four", "one three four"),
            "one 2-3 four"
        );
        // They deleted everything I deleted and more: my insertion still lands.
        assert_eq!(merge("abcdef", "aXf", "af"), "aXf");
        // I deleted a span that starts inside theirs.
        assert_eq!(merge("abcdef", "abf", "aZdef"), "aZf");
    }

    #[test]
    fn a_rebased_edit_on_an_unchanged_text_is_the_edit() {
        let local = splice_between("abc", "abXc").unwrap();
        assert_eq!(rebase("abc", "abc", &local), vec![local]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 256,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x7E47_0001),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        /// Whatever the texts, the splice between them turns one into the other, and two
        /// edits of the same text merge without panicking into a text holding every
        /// character either side typed.
        #[test]
        fn splices_round_trip_and_merges_keep_what_was_typed(
            base in "[abé ]{0,12}",
            mine in "[abé ]{0,12}",
            theirs in "[abé ]{0,12}",
        ) {
            let s = splice_between(&base, &mine);
            proptest::prop_assert_eq!(apply(&base, s.as_slice()), mine.clone());
            if let Some(local) = s {
                let merged = apply(&theirs, &rebase(&base, &theirs, &local));
                if theirs == base {
                    proptest::prop_assert_eq!(&merged, &mine);
                }
                proptest::prop_assert!(merged.contains(local.insert.as_str()), "{merged:?} lost {:?}", local.insert);
            }
        }
    }
}
