//! A configuration with many KPIs, for measuring how loading scales
//! (`examples/config_load.rs`, `tests/config_load.rs`).

/// A config of `n` KPIs on one topic: event KPIs, and every tenth a ratio
/// of the two KPIs before it (each ratio names two KPIs above it); a
/// receiver, a subscription to every KPI, and one naming each ratio's
/// numerator (`n / 10` subscriptions, each checked against the KPIs).
pub fn config_of(n: usize) -> String {
    let mut text = String::from("[[topic]]\nname = \"shop\"\n\n");
    for i in 0..n {
        if i % 10 == 9 {
            text.push_str(&format!(
                "[[kpi]]\nname = \"ratio_{i}\"\naggregate = \"ratio\"\nnumerator = \"kpi_{}\"\ndenominator = \"kpi_{}\"\n\n",
                i - 2,
                i - 1
            ));
        } else {
            text.push_str(&format!(
                "[[kpi]]\nname = \"kpi_{i}\"\nwhere = {{ type = \"t{i}\" }}\naggregate = \"count\"\nbucket = \"5m\"\n\n"
            ));
        }
    }
    text.push_str("[[receiver]]\nname = \"team\"\nemail = [\"team@example.com\"]\n\n");
    text.push_str("[[subscription]]\nname = \"all\"\nkpis = [\"*\"]\nreceivers = [\"team\"]\n");
    for i in (9..n).step_by(10) {
        text.push_str(&format!(
            "\n[[subscription]]\nname = \"owner_{i}\"\nkpis = [\"kpi_{}\"]\nlabels = {{ kpi = \"kpi_{}\" }}\nreceivers = [\"team\"]\n",
            i - 2,
            i - 2
        ));
    }
    text
}
