//! `callpark lint` on the dial plan FusionPBX serves: its shipped templates
//! (app/dialplans/resources/switch/conf/dialplan/*.xml) rendered for the domain
//! `pbx.example.com` as FusionPBX's import, dialplan::xml() and xml_handler dialplan.lua do
//! (tests/data/lint/fusionpbx/README.md, render.py).
//!
//! Every expectation below was derived by hand from mod_dialplan_xml (parse_exten and
//! dialplan_hunt), before running the lint:
//! - extensions are tried in document order, conditions in order; a condition is true or
//!   false; it proceeds when true, or when false with anti-actions; `break` (on-false by
//!   default, on-true, always, never) decides whether the next one is evaluated; the extension
//!   takes the call iff the last evaluated condition proceeded and `switch_true(continue)` is
//!   false. FusionPBX writes `continue` from a boolean column through PHP, so the served plan
//!   says `continue="1"` (switch_true: true) or `continue=""` (false);
//! - `inline="true"` actions run during the hunt and queue nothing; queued actions stay queued
//!   when the hunt goes on, so a queued routing application (transfer, bridge, a script...)
//!   catches the call even when its extension does not take it;
//! - `field=""` (what FusionPBX writes for a bare `<condition>`): the field's value is ""
//!   (switch_caller_get_field_by_name knows no such name), and `expression=""` matches it:
//!   always true;
//! - `expression` is expanded (switch_channel_expand_variables) before matching, so
//!   `^\Q${caller_id_number}\E$` on destination_number depends on the caller id;
//! - a condition on anything else (a channel variable, the caller, `username`) is unknown:
//!   tried both ways, "caught" if every way takes the orbit, "may catch" if some way does,
//!   with the reason "depends on field `X`" (X: the first such condition of the extension).
//!
//! What follows from the served plan for any number N that no destination_number expression
//! matches (the "variable-dependent" tail, used by several cases):
//! - the continue="1" extensions (user_exists, caller-details, global-variables,
//!   domain-variables, clear_sip_auto_answer, call-direction, user_record, rtp_has_crypto,
//!   redial, default_caller_id, user_hold_music, default_hold_music, identity-unset,
//!   is_zrtp_secure, is_secure, call_screen) never take a call, and what they queue for N is
//!   no routing (set, export, hash, unset, mkdir, bind_digit_action, sleep, playback, eval,
//!   answer, phrase, record): nothing;
//! - the one-condition star codes and words (speed_dial, call_privacy, eavesdrop, vmain_user,
//!   nb-conference, ...) are false; extensions whose first false condition on
//!   destination_number has the default break (group-intercept, intercept-ext's second,
//!   is_transfer, hold_music) stop there, having queued nothing; those whose destination
//!   conditions all fail with break on-true or never (agent_status, do-not-disturb,
//!   call-forward, vmain) end on a false condition: not taken (the `${caller_id_number}` in
//!   do-not-disturb's and call-forward's last expressions follows a `dnd+` / `forward+`
//!   prefix, which no orbit has);
//! - valet_park: its first destination conditions have break="never" and only inline
//!   actions, the one with the default break (the 8th) is false for N: stops, not taken,
//!   nothing queued;
//! - extension-to-voicemail: `${user_exists}` ^true$, then `username` =~
//!   `^\Q${caller_id_number}\E$`, then destination_number =~ `^\Q${caller_id_number}\E$`
//!   (the caller dialling their own number), all unknown, default break, then answer... lua
//!   (voicemail): may catch every N, depends on `${user_exists}`; a destination (its actions
//!   run a script, voicemail): Conflicts;
//! - call-forward-not-registered: `${user_exists}`, `${forward_user_not_registered_enabled}`,
//!   `${forward_user_not_registered_destination}` ^$ break="on-true" (true: it stops there,
//!   matched, and takes the call), then `${sofia_contact ...}` with a `transfer`: may catch,
//!   Catches (transfer);
//! - call-forward-all: `${forward_all_enabled}`, then `${call_direction}` ^local$
//!   break="on-true" with a queued transfer, the same for ^inbound$: may catch, Catches;
//! - follow-me-destinations: `${user_exists}`, `${follow_me_enabled}` with a queued lua:
//!   may catch, Conflicts (a script);
//! - local_extension (continue="1"): `${user_exists}` true queues `limit`, then the
//!   `field=""` condition (always true) queues the sets and `bridge user/...`: that queued
//!   bridge catches the call whenever `${user_exists}` is true: may catch, Conflicts (it rings
//!   the phone of the dialled number);
//! - call-forward-no-answer: `${forward_no_answer_enabled}`, `${user_exists}`, transfer: may
//!   catch, Catches;
//! - voicemail: `${user_exists}` with inline sets and a queued lua: may catch, Conflicts;
//! - no extension surely takes N: "(no extension)", caught (callpark's include belongs at the
//!   top of the context).

use std::path::{Path, PathBuf};

use callpark::cli::lint::{FailOn, fails};
use callpark::lint::freeswitch::{self, Dialplan};
use callpark::lint::report::caught_texts;
use callpark::lint::{Certainty, Kind, Report, Target, orbits_from_list};

const CONTEXT: &str = "pbx.example.com";

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/lint/fusionpbx")
        .join(p)
}

fn served() -> Dialplan {
    freeswitch::load(&data("dialplan.xml")).unwrap()
}

fn check(dp: &Dialplan, orbits: &str) -> Report {
    let table = orbits_from_list(orbits).unwrap();
    let mut r = Report::new(Target::from_table(&table));
    freeswitch::check(dp, CONTEXT, &mut r).unwrap();
    r
}

/// (rule, kind, certainty, orbits as "first-last" runs, reason of a "may catch").
type Seen = (String, Kind, Certainty, String, Option<String>);

fn summary(r: &Report) -> Vec<Seen> {
    r.findings
        .iter()
        .map(|f| {
            let runs: Vec<String> = caught_texts(r, &f.caught)
                .into_iter()
                .map(|(a, b)| if a == b { a } else { format!("{a}-{b}") })
                .collect();
            let reason = (f.certainty == Certainty::MayCatch)
                .then(|| f.reason.clone())
                .flatten();
            (f.rule.clone(), f.kind, f.certainty, runs.join(","), reason)
        })
        .collect()
}

fn caught(rule: &str, kind: Kind, runs: &str) -> Seen {
    (rule.into(), kind, Certainty::Caught, runs.into(), None)
}

fn may(rule: &str, kind: Kind, runs: &str, field: &str) -> Seen {
    (
        rule.into(),
        kind,
        Certainty::MayCatch,
        runs.into(),
        Some(format!("depends on field `{field}`")),
    )
}

/// The variable-dependent tail (see the module comment) on `runs`.
fn tail(runs: &str) -> Vec<Seen> {
    vec![
        may(
            "call-forward-not-registered",
            Kind::Catches,
            runs,
            "${user_exists}",
        ),
        may(
            "call-forward-all",
            Kind::Catches,
            runs,
            "${forward_all_enabled}",
        ),
        may(
            "follow-me-destinations",
            Kind::Conflicts,
            runs,
            "${user_exists}",
        ),
        may("local_extension", Kind::Conflicts, runs, "${user_exists}"),
        may(
            "call-forward-no-answer",
            Kind::Catches,
            runs,
            "${forward_no_answer_enabled}",
        ),
        may("voicemail", Kind::Conflicts, runs, "${user_exists}"),
        caught("(no extension)", Kind::Catches, runs),
    ]
}

/// Whether the run exits 1 under `--fail-on caught`, `conflict`, `may`.
fn exits(r: &Report) -> [bool; 3] {
    [FailOn::Caught, FailOn::Conflict, FailOn::May]
        .map(|k| r.findings.iter().any(|f| fails(f, &[k])))
}

/// A conflict's fix renumbers; it never says "move" (no fix may put or move callpark's
/// include above a destination: that would take the destination away).
fn conflict_fixes_renumber(r: &Report) {
    for f in r.findings.iter().filter(|f| f.kind == Kind::Conflicts) {
        assert!(
            (f.fix.contains("use another orbit range") || f.fix.contains("no insertion fix"))
                && !f.fix.contains("move")
                && !f.fix.contains("X-PRE-PROCESS")
                && !f.fix.contains("XML callpark"),
            "{}: {}",
            f.rule,
            f.fix
        );
    }
}

#[test]
fn the_served_plan_loads_in_fusionpbx_order() {
    let dp = served();
    assert_eq!(dp.contexts.len(), 1);
    assert_eq!(dp.contexts[0].name, CONTEXT);
    let names: Vec<&str> = dp.contexts[0]
        .extensions
        .iter()
        .map(|x| x.name.as_str())
        .collect();
    // dialplan_order of the enabled templates of context "global" or ${domain_name}
    // (ties by name); the public ones (caller-details 010, not-found) and the disabled ones
    // (call-limit, is_local, call_block, record_all, page, valet_park_in, ...) are not served.
    assert_eq!(
        names,
        [
            "user_exists",
            "caller-details",
            "global-variables",
            "domain-variables",
            "clear_sip_auto_answer",
            "call-direction",
            "user_record",
            "rtp_has_crypto",
            "redial",
            "emergency_recent_calls",
            "speed_dial",
            "default_caller_id",
            "user_hold_music",
            "default_hold_music",
            "identity-unset",
            "agent_status",
            "agent_status_id",
            "agent-status-break",
            "group-intercept",
            "page-extension",
            "eavesdrop",
            "call_privacy",
            "call_return",
            "intercept-ext",
            "intercept-ext-polycom",
            "number_queue",
            "dx",
            "att_xfer",
            "extension-to-voicemail",
            "send_to_voicemail",
            "xfer",
            "vmain",
            "xfer_vm",
            "is_transfer",
            "vmain_user",
            "cf",
            "delay_echo",
            "nb-conference",
            "echo",
            "is_zrtp_secure",
            "milliwatt",
            "is_secure",
            "tone_stream",
            "hold_music",
            "recordings",
            "directory",
            "wake-up",
            "valet_park",
            "valet_park_auto",
            "do-not-disturb",
            "call_screen",
            "ring-group-forward",
            "call-forward",
            "call-forward-not-registered",
            "follow-me",
            "call-forward-all",
            "follow-me-destinations",
            "talking clock date and time",
            "talking clock time",
            "talking clock date",
            "local_extension",
            "call-forward-no-answer",
            "voicemail",
        ]
    );
}

/// The same plan with `continue` as FusionPBX wrote it while dialplan_continue was a text
/// column (5.4 and before): "true" where 5.5 writes "1" (5.4 wrote "false" where 5.5 writes
/// "", left as it is: false either way). FreeSWITCH reads "1" and "true" alike
/// (switch_true), so every expectation is the same on both renderings.
fn text_continue(dir: &Path) -> Dialplan {
    let text = std::fs::read_to_string(data("dialplan.xml")).unwrap();
    assert_eq!(text.matches("continue=\"1\"").count(), 17);
    std::fs::write(
        dir.join("dialplan.xml"),
        text.replace("continue=\"1\"", "continue=\"true\""),
    )
    .unwrap();
    freeswitch::load(&dir.join("dialplan.xml")).unwrap()
}

/// One extension of the served plan, verbatim, alone in the context.
fn only(name: &str) -> Dialplan {
    let text = std::fs::read_to_string(data("dialplan.xml")).unwrap();
    let at = text.find(&format!("<extension name=\"{name}\" ")).unwrap();
    let end = at + text[at..].find("</extension>").unwrap() + "</extension>".len();
    context(&text[at..end])
}

fn context(body: &str) -> Dialplan {
    freeswitch::parse_str(
        &format!("<include>\n<context name=\"{CONTEXT}\">\n{body}\n</context>\n</include>\n"),
        "t.xml",
    )
    .unwrap()
}

// Case 1, 7000-7099: no destination_number expression of the plan matches a plain 4-digit
// number (the star codes all start with `*`, dx/att_xfer/xfer/cf/is_transfer/vmain are
// words; do-not-disturb's unanchored `\*363$` needs a star). What may take them is only
// extension-to-voicemail and the variable-dependent tail; nothing surely does.
const PLAIN: &str = "7000-7099";

fn plain_expected() -> Vec<Seen> {
    let mut want = vec![may(
        "extension-to-voicemail",
        Kind::Conflicts,
        PLAIN,
        "${user_exists}",
    )];
    want.extend(tail(PLAIN));
    want
}

// Case 2, *6700-*6799: nothing before call_privacy matches them (speed_dial wants *0, the
// agent codes *22-*24, group-intercept/page-extension *8, eavesdrop *33; the continue="1"
// extensions queue no routing, redial's transfer is for *870 only). call_privacy,
// `^\*67(\d+)$` (one condition, default break), is true for all of them and queues privacy,
// set, set, `transfer $1 XML ${context}`: caught, and sure (no unknown condition). `\d+`
// matches any length and the action sends the number on: Catches; the fix puts callpark's
// include above it.
const PRIVACY: &str = "*6700-*6799";

fn privacy_expected() -> Vec<Seen> {
    vec![caught("call_privacy", Kind::Catches, PRIVACY)]
}

fn privacy_checks(r: &Report) {
    assert_eq!(summary(r), privacy_expected());
    assert_eq!(exits(r), [true, false, false]);
    let fix = &r.findings[0].fix;
    assert!(
        fix.contains(
            r#"<X-PRE-PROCESS cmd="include" data="callpark.xml"/> above <extension name="call_privacy"> ("#
        ) && fix.contains("dialplan.xml:274)"),
        "{fix}"
    );
}

// Case 3, *5900-*5999, FusionPBX's valet park lots. Before valet_park (470) nothing matches
// a `*59xx` number but extension-to-voicemail (may catch, see the module comment).
// valet_park: conditions 1 and 5 (`^(park)?\+?\*(59(0[1-9]|[1-9][0-9]))$`, break="never",
// no actions) are true for *5901-*5999; 2-4 and 6 (variables, never) only run inline sets;
// 7 (same expression, never) inline sets; 8 (same expression, default break) true: go on;
// 9 (variable, never) inline; 10 (`^(park)?\+?\*(59[0-9][0-9])$`, never) inline; 11
// (`${park_in_use}:${referred_by_user}` =~ ^true:.+$, break="on-true"): true queues the sets
// and `bridge user/${referred_by_user}@${domain_name}` and stops there, matched: taken; false
// goes on to 12 (`${park_in_use}` =~ true, never), which has anti-actions: it proceeds
// either way (both lists end in valet_park) and is the last: taken. Every way takes
// *5901-*5999: caught. For *5900, condition 8 is false with the default break: the extension
// stops, not taken, nothing queued (all inline). valet_park_auto (`^(park\+)?\*(5900)$`,
// then answer, sets, `lua app.lua valet_park`) takes *5900: caught. Both are destinations
// (bridge user/, a script): Conflicts.
const VALET: &str = "*5900-*5999";

fn valet_expected() -> Vec<Seen> {
    vec![
        may(
            "extension-to-voicemail",
            Kind::Conflicts,
            VALET,
            "${user_exists}",
        ),
        caught("valet_park", Kind::Conflicts, "*5901-*5999"),
        caught("valet_park_auto", Kind::Conflicts, "*5900"),
    ]
}

// Case 4, *4000-*4099, around FusionPBX's voicemail main number *4000.
// extension-to-voicemail may catch them all. *4000: vmain's first condition
// (`^vmain$|^\*4000$|^\*98$`, break="never") is true and queues answer, sleep, sets and
// `lua app.lua voicemail`; its second (`^(vmain$|^\*4000$|^\*98|voicemail\+)(\d{2,12})$`:
// only `*98` or `voicemail+` followed by 2-12 digits can match) is false and is the last
// evaluated: vmain does not take the call and the hunt goes on, but the queued lua
// (voicemail) runs first whatever takes the call later, or when the hunt ends: caught by
// vmain, whose expression names *4000 exactly: Conflicts. *4001-*4099: nothing else matches
// them (nb-conference wants *30, recordings *732, vmain_user *97...): the
// variable-dependent tail, and no extension surely takes them.
const VMAIN: &str = "*4000-*4099";

fn vmain_expected() -> Vec<Seen> {
    let mut want = vec![
        may(
            "extension-to-voicemail",
            Kind::Conflicts,
            VMAIN,
            "${user_exists}",
        ),
        caught("vmain", Kind::Conflicts, "*4000"),
    ];
    want.extend(tail("*4001-*4099"));
    want
}

// Case 5, *800-*899. redial (continue="1"): `^(redial|\*870)$` break="on-true" is true for
// *870, queues `transfer ${hash(select/...-last_dial/...)}` and stops, matched; continue lets
// the hunt go on, but the queued transfer sends the call away first: caught, and its
// expression names *870 exactly (redial's own code): Conflicts. For the other numbers its
// first condition is false (on-true: go on) and the second (`field=""`, break="never") is
// true and queues only a hash: nothing. group-intercept wants `^\*8$` and stops there.
// page-extension, `^\*8(\d{2,7})$`, matches *8 followed by two digits: all the rest, queuing
// sets and `lua page.lua`: caught, a destination (a script, paging): Conflicts. number_queue
// (`^\*800(.*)$`) would take *800, but page-extension comes first.
const PAGE: &str = "*800-*899";

fn page_expected() -> Vec<Seen> {
    vec![
        caught("redial", Kind::Conflicts, "*870"),
        caught("page-extension", Kind::Conflicts, "*800-*869,*871-*899"),
    ]
}

// The cases on the plan as FusionPBX 5.5 serves it (continue="1"); the tests of one cause
// each further down pin the three readings they need.

#[test]
fn served_plain_numbers_only_the_per_user_extensions_may_take() {
    let r = check(&served(), PLAIN);
    assert_eq!(summary(&r), plain_expected());
    // Conflicts (the per-user destinations), may-catch catches, and the orbits no extension
    // takes: every --fail-on trips.
    assert_eq!(exits(&r), [true, true, true]);
    conflict_fixes_renumber(&r);
}

#[test]
fn served_star_67_is_call_privacys_catch_all() {
    privacy_checks(&check(&served(), PRIVACY));
}

#[test]
fn served_valet_park_lots_are_destinations() {
    let r = check(&served(), VALET);
    assert_eq!(summary(&r), valet_expected());
    assert_eq!(exits(&r), [false, true, false]);
    conflict_fixes_renumber(&r);
}

#[test]
fn served_voicemail_main_is_a_destination_through_its_queued_script() {
    let r = check(&served(), VMAIN);
    assert_eq!(summary(&r), vmain_expected());
    assert_eq!(exits(&r), [true, true, true]);
    conflict_fixes_renumber(&r);
}

#[test]
fn served_star_8xx_pages_and_redial_is_a_queued_transfer() {
    let r = check(&served(), PAGE);
    assert_eq!(summary(&r), page_expected());
    assert_eq!(exits(&r), [false, true, false]);
    conflict_fixes_renumber(&r);
}

// The cases whose only extensions in the way are not extension-to-voicemail, on the plan
// with continue spelled "true": the lint agrees with the derivation.

#[test]
fn text_continue_star_67_is_call_privacys_catch_all() {
    let dir = tempfile::tempdir().unwrap();
    privacy_checks(&check(&text_continue(dir.path()), PRIVACY));
}

#[test]
fn text_continue_star_8xx_pages_and_redial_is_a_queued_transfer() {
    let dir = tempfile::tempdir().unwrap();
    let r = check(&text_continue(dir.path()), PAGE);
    assert_eq!(summary(&r), page_expected());
    assert_eq!(exits(&r), [false, true, false]);
    conflict_fixes_renumber(&r);
}

#[test]
fn no_conflict_fix_moves_callpark_above_a_destination() {
    // Whatever the lint finds in each case, on both renderings, a conflict's fix is another
    // orbit range, never callpark's include put above the destination.
    let dir = tempfile::tempdir().unwrap();
    for dp in [served(), text_continue(dir.path())] {
        for orbits in [PLAIN, PRIVACY, VALET, VMAIN, PAGE] {
            let r = check(&dp, orbits);
            assert!(
                r.findings.iter().any(|f| f.kind == Kind::Conflicts) || orbits == PRIVACY,
                "{orbits}: {:#?}",
                r.findings
            );
            conflict_fixes_renumber(&r);
        }
    }
}

// One cause each, on extensions of the served plan.

#[test]
fn continue_1_lets_the_hunt_go_on() {
    // is_zrtp_secure as served: continue="1", one condition on a variable with actions
    // (sleep, playback) and an anti-action (eval). The condition proceeds either way, but
    // dialplan_hunt ends the hunt only when `!switch_true(cont)`, and switch_true("1") is true
    // (a non-zero number): the hunt goes on, and nothing queued routes the call (sleep,
    // playback, eval). No extension takes 7000-7099.
    let r = check(&only("is_zrtp_secure"), PLAIN);
    assert_eq!(
        summary(&r),
        [caught("(no extension)", Kind::Catches, PLAIN)]
    );
}

#[test]
fn a_variable_in_the_expression_is_expanded() {
    // extension-to-voicemail as served: `${user_exists}` =~ ^true$, `username` =~
    // `^\Q${caller_id_number}\E$`, then destination_number =~ `^\Q${caller_id_number}\E$`.
    // parse_exten expands variables in the expression before matching
    // (switch_channel_expand_variables; `\Q` is no escape there), so the last one is true
    // when the caller dials their own number: for any orbit, a caller whose caller id is
    // that orbit. All three unknown: may catch, a destination (voicemail through a script).
    let r = check(&only("extension-to-voicemail"), PLAIN);
    assert_eq!(
        summary(&r),
        [
            may(
                "extension-to-voicemail",
                Kind::Conflicts,
                PLAIN,
                "${user_exists}"
            ),
            caught("(no extension)", Kind::Catches, PLAIN),
        ]
    );
}

#[test]
fn an_empty_field_is_always_true() {
    // FusionPBX serves a bare `<condition>` (group-intercept's last, local_extension's second,
    // global-variables, domain-variables, user_exists's second, redial's second) as
    // `<condition field="" expression="">`. parse_exten: `field` is "" (not NULL), has no `$`,
    // switch_caller_get_field_by_name(profile, "") is NULL, so the value is "", and the empty
    // expression matches it: always true. group-intercept's last condition as an extension of
    // its own (answer, `lua intercept_group.lua inbound`) takes every number: caught, and a
    // destination (a script).
    let r = check(
        &context(
            r#"<extension name="group-intercept-tail" continue="" uuid="x">
	<condition field="" expression="">
		<action application="answer" data=""/>
		<action application="lua" data="intercept_group.lua inbound"/>
	</condition>
</extension>"#,
        ),
        PLAIN,
    );
    assert_eq!(
        summary(&r),
        [caught("group-intercept-tail", Kind::Conflicts, PLAIN)]
    );
}

/// The served plan with README's step applied: callpark's generated include as the first
/// line of the context, dialplan/freeswitch/callpark.xml beside it.
fn with_include(dir: &Path) -> Dialplan {
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialplan/freeswitch/callpark.xml"),
        dir.join("callpark.xml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(data("dialplan.xml")).unwrap();
    let open =
        "<context name=\"pbx.example.com\" destination_number=\"1000\" hostname=\"fusionpbx\">";
    assert_eq!(text.matches(open).count(), 1);
    let edited = text.replace(
        open,
        &format!("{open}\n<X-PRE-PROCESS cmd=\"include\" data=\"callpark.xml\"/>"),
    );
    std::fs::write(dir.join("dialplan.xml"), edited).unwrap();
    freeswitch::load(&dir.join("dialplan.xml")).unwrap()
}

#[test]
fn readme_step_first_in_the_context_leaves_nothing_to_report() {
    // With the include first, callpark's extensions come before every FusionPBX one.
    // callpark-park (`^park$`, default break) and the remote ranges (701-799, *7000-*7099)
    // are false for 601-699; callpark-orbits-warehouse's first condition
    // (`^(60[1-9]|6[1-9]\d)$`) is true for 601-699 and its second (`${transfer_source}`) has
    // anti-actions, so it proceeds either way and is the last: it takes every orbit (no
    // continue), before any FusionPBX extension is tried. Nothing to report.
    let dir = tempfile::tempdir().unwrap();
    let dp = with_include(dir.path());
    let names: Vec<&str> = dp.contexts[0]
        .extensions
        .iter()
        .take(4)
        .map(|x| x.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "callpark-park",
            "callpark-remote-main",
            "callpark-remote-reception",
            "callpark-orbits-warehouse"
        ]
    );
    let r = check(&dp, "601-699");
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(exits(&r), [false, false, false]);
}
