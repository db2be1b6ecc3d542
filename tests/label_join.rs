//! Label joins (chronon-semantics §7, §10.3 LabelJoinTest): entity labels from the snapshot of
//! `label_ds`, aggregated labels over the window starting at the left day, offsets as
//! inclusive day counts, label-table evolution and validation.

mod labelfix;
mod reference;

use labelfix::*;
use reference::harness::warehouse;
use reference::V;
use weft::sql::Engine;

/// testLabelJoin: label_ds 2022-10-30, offsets 30/20 → left days 10-01..10-11; each row gets
/// the room type of snapshot 10-30, joined on the listing only.
#[test]
fn entity_labels_come_from_the_label_ds_snapshot() {
    let (_dir, wh) = warehouse(&db());
    let engine = Engine::new(&wh).unwrap();
    let j = join("unit_test.label_join.room", vec![room_label()], 30, 20);
    let mut r = runner(&engine, &j);
    let rep = label(&engine, &mut r, "2022-10-30");
    assert_eq!(rep.written.len(), 3, "{rep:?}");
    let got = rows(
        &wh,
        &format!(
            "SELECT listing_id, ds, label_ds, {ROOM_COL} AS room FROM {} ORDER BY ds, listing_id",
            table(&j, "_labels")
        ),
    );
    let want: Vec<(i64, &str, &str)> = vec![
        (1, "2022-10-01", "ENTIRE_HOME"),
        (2, "2022-10-01", "PRIVATE_ROOM"),
        (3, "2022-10-02", "SHARED_ROOM"),
        (4, "2022-10-02", "ENTIRE_HOME"),
        (5, "2022-10-03", "HOTEL_ROOM"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, (id, ds, room)) in got.iter().zip(want) {
        assert_eq!(g["listing_id"], V::Int(id));
        assert_eq!(g["ds"], V::s(ds));
        assert_eq!(g["label_ds"], V::s("2022-10-30"));
        assert_eq!(g["room"], V::s(room));
    }
    let labeled = rows(&wh, &format!("SELECT * FROM {} ORDER BY ds, listing_id, m_views", table(&j, "_labeled")));
    assert_eq!(labeled.len(), 6, "{labeled:?}");
    println!("{labeled:?}");
}
