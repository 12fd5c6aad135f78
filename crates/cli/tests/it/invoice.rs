//! `stackbill invoice` and the demo's month end, as users run them.

use serde_json::Value;

use stackbill_test_support::TestDb;

use crate::{ok_json, stackbill};

#[test]
fn the_demo_month_end_lists_shows_diffs_and_exports() {
    let db = TestDb::new();
    let dir = &db.dir;
    let summary = ok_json(
        &db,
        &["demo", "--no-serve", "--json", "--usage-records", "20000"],
    );
    let last = summary["finalizedPeriod"].as_str().unwrap().to_owned();
    let this = summary["draftPeriod"].as_str().unwrap().to_owned();
    assert!(
        summary["finalizedInvoices"].as_u64().unwrap() > 5,
        "{summary}"
    );
    assert!(summary["draftInvoices"].as_u64().unwrap() > 0, "{summary}");

    let finals = ok_json(&db, &["invoice", "list", &last, "--json"]);
    let finals = finals.as_array().unwrap();
    assert!(finals.iter().all(|i| i["status"] == "final"));
    let billed_total: rust_decimal::Decimal = finals
        .iter()
        .map(|i| {
            i["total"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(
        billed_total.to_string(),
        summary["finalizedTotal"].as_str().unwrap()
    );

    let drafts = ok_json(&db, &["invoice", "list", &this, "--json"]);
    let with_adjustment: Vec<&Value> = drafts
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["adjustments"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(with_adjustment.len(), 1, "one late record, one adjustment");
    let adjustment = &with_adjustment[0]["adjustments"][0];
    assert_eq!(adjustment["period"], last.as_str());
    assert_eq!(adjustment["reason"], "LateUsage");
    assert_eq!(adjustment["quantity"], "64");
    assert_eq!(adjustment["meterName"], "Base VM Size Hours");
    assert_eq!(adjustment["unit"], "Virtual core hours");

    // Invoices for people: who is billed and to whom, and what each line was priced at,
    // as the final invoice kept it.
    let has_vm = |i: &&Value| {
        i["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["meterName"] == "Base VM Size Hours")
    };
    let final_invoice = finals
        .iter()
        .filter(|i| i["partnerId"] == "contoso-csp")
        .find(has_vm)
        .unwrap();
    assert!(
        !final_invoice["customerName"].as_str().unwrap().is_empty(),
        "{final_invoice}"
    );
    assert_eq!(final_invoice["partnerName"], "Contoso Cloud Partners");
    let vm_line = final_invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["meterName"] == "Base VM Size Hours")
        .unwrap();
    assert_eq!(vm_line["unitPrice"], "0.008", "{vm_line}");
    assert_eq!(vm_line["tiered"], true, "{vm_line}");
    assert!(vm_line["markupPercent"].is_string(), "{vm_line}");
    let subscription = with_adjustment[0]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();

    let csv = stackbill(&db, &["invoice", "show", &subscription, &this, "--csv"]);
    assert!(csv.status.success());
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains(",adjustment,") && l.contains(",LateUsage")),
        "{csv}"
    );

    let diff = ok_json(
        &db,
        &[
            "invoice",
            "diff",
            &subscription,
            &last,
            "--from",
            "2000-01-01T00:00:00Z",
            "--json",
        ],
    );
    let vm = diff["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meterName"] == "Base VM Size Hours")
        .unwrap();
    assert_eq!(vm["newRecords"], 1, "{diff}");
    assert_eq!(vm["newQuantity"], "64");

    // This month's draft since before anything: its usage is new (the month is open, nothing
    // of it is late), and the adjustment carrying last month's late record is a difference.
    let draft = ok_json(
        &db,
        &[
            "invoice",
            "diff",
            &subscription,
            &this,
            "--from",
            "2000-01-01T00:00:00Z",
            "--json",
        ],
    );
    assert_eq!(draft["finalAtFrom"], false, "{draft}");
    let adjustment = &draft["adjustments"][0];
    assert_eq!(adjustment["reason"], "LateUsage", "{draft}");
    assert_eq!(adjustment["period"], last.as_str(), "{draft}");
    assert_eq!(adjustment["amountFrom"], "0", "{draft}");
    let text = stackbill(
        &db,
        &[
            "invoice",
            "diff",
            &subscription,
            &this,
            "--from",
            "2000-01-01T00:00:00Z",
        ],
    );
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(" new records (+") && !text.contains("late records"),
        "{text}"
    );
    assert!(text.contains("LateUsage"), "{text}");

    let out = dir.path().join("export");
    let export = stackbill(
        &db,
        &[
            "invoice",
            "export",
            &last,
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let files = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(
        files,
        finals.len() + 1,
        "one file per invoice and a partner summary"
    );

    let early = stackbill(&db, &["invoice", "finalize", &this]);
    assert_eq!(early.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&early.stderr).contains("PeriodNotEnded"));
    let again = stackbill(&db, &["invoice", "finalize", &last]);
    assert!(again.status.success(), "finalizing again changes nothing");
}

/// The text `pdftotext` (Debian's poppler-utils) reads from a PDF file, words single-spaced.
fn pdf_text(path: &std::path::Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils) runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn invoices_are_documents_with_profiles_numbers_and_tax() {
    let db = TestDb::new();
    let dir = &db.dir;
    let summary = ok_json(
        &db,
        &["demo", "--no-serve", "--json", "--usage-records", "5000"],
    );
    let last = summary["finalizedPeriod"].as_str().unwrap().to_owned();
    let this = summary["draftPeriod"].as_str().unwrap().to_owned();
    let finals = ok_json(&db, &["invoice", "list", &last, "--json"]);
    let invoice = &finals.as_array().unwrap()[0];
    let sub = invoice["subscriptionId"].as_str().unwrap().to_owned();
    let number = invoice["invoiceNumber"].as_str().unwrap().to_owned();
    assert!(
        number.starts_with("CCP-"),
        "the demo partner's prefix: {number}"
    );

    // Two processes render the final invoice: the same bytes, and its numbers in the text.
    let first = dir.path().join("first.pdf");
    let second = dir.path().join("second.pdf");
    for file in [&first, &second] {
        let out = stackbill(
            &db,
            &[
                "invoice",
                "pdf",
                &sub,
                &last,
                "--out",
                file.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{out:?}");
    }
    assert!(std::fs::read(&first).unwrap() == std::fs::read(&second).unwrap());
    let text = pdf_text(&first);
    let tax = &invoice["tax"];
    for expected in [
        number.clone(),
        format!("Subtotal {}", invoice["total"].as_str().unwrap()),
        format!(
            "Tax ({} %) {}",
            tax["ratePercent"].as_str().unwrap(),
            tax["amount"].as_str().unwrap()
        ),
        format!(
            "Total due ({}) {}",
            invoice["currency"].as_str().unwrap(),
            invoice["totalDue"].as_str().unwrap()
        ),
        "Contoso Cloud Partners Ltd".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected:?} not in {text}");
    }
    for line in invoice["lines"].as_array().unwrap() {
        let amount = line["amount"].as_str().unwrap();
        let quantity = line["quantity"].as_str().unwrap();
        assert!(
            text.contains(&format!("{quantity} ")) && text.contains(&format!(" {amount}")),
            "{line} in {text}"
        );
    }

    // A profile changed now prints on drafts, never on the final invoice.
    let profile = ok_json(
        &db,
        &[
            "subscription",
            "profile",
            &sub,
            "--legal-name",
            "Renamed Customer plc",
            "--tax-rate",
            "5",
            "--json",
        ],
    );
    assert_eq!(profile["taxRatePercent"], "5");
    assert_eq!(profile["country"], "GB", "fields not given are kept");
    let again = dir.path().join("again.pdf");
    let out = stackbill(
        &db,
        &[
            "invoice",
            "pdf",
            &sub,
            &last,
            "--out",
            again.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read(&first).unwrap() == std::fs::read(&again).unwrap());
    let draft = stackbill(&db, &["invoice", "pdf", &sub, &this, "--out", "-"]);
    assert!(draft.status.success() && draft.stdout.starts_with(b"%PDF-"));
    let draft_file = dir.path().join("draft.pdf");
    std::fs::write(&draft_file, &draft.stdout).unwrap();
    let text = pdf_text(&draft_file);
    assert!(
        text.contains("DRAFT")
            && text.contains("Renamed Customer plc")
            && text.contains("Tax (5 %)"),
        "{text}"
    );

    // A bad field is refused naming the flag, and nothing changes.
    let bad = stackbill(
        &db,
        &[
            "partner",
            "profile",
            "contoso-csp",
            "--invoice-prefix",
            "x-1",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        message.contains("InvalidBillingProfile: --invoice-prefix"),
        "{message}"
    );
    let partner = ok_json(&db, &["partner", "profile", "contoso-csp", "--json"]);
    assert_eq!(partner["invoicePrefix"], "CCP");

    // The month's PDFs, one per invoice, named by number.
    let out_dir = dir.path().join("pdfs");
    let out = stackbill(
        &db,
        &[
            "invoice",
            "export",
            &last,
            "--format",
            "pdf",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pdf"))
        .collect();
    names.sort();
    let mut numbers: Vec<String> = finals
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}.pdf", i["invoiceNumber"].as_str().unwrap()))
        .collect();
    numbers.sort();
    assert_eq!(names, numbers);
    let sequence: Vec<String> = (1..=numbers.len())
        .map(|n| format!("{}{n:06}.pdf", &number[..number.len() - 6]))
        .collect();
    assert_eq!(numbers, sequence, "numbers without gaps");
}

#[test]
fn the_reconciliation_file_adds_up_to_the_month_s_invoices() {
    let db = TestDb::new();
    let dir = &db.dir;
    let summary = ok_json(
        &db,
        &["demo", "--no-serve", "--json", "--usage-records", "5000"],
    );
    let out = dir.path().join("recon");
    for period in [
        summary["finalizedPeriod"].as_str().unwrap(),
        summary["draftPeriod"].as_str().unwrap(),
    ] {
        let written = ok_json(
            &db,
            &[
                "invoice",
                "export",
                period,
                "--format",
                "partner-center",
                "--out",
                out.to_str().unwrap(),
                "--json",
            ],
        );
        let file = written["file"].as_str().unwrap();
        assert!(
            file.ends_with(&format!("reconciliation-{period}.csv")),
            "{file}"
        );
        let mut reader = csv::Reader::from_path(file).unwrap();
        let header = reader.headers().unwrap().clone();
        assert_eq!(header.len(), 55);
        let subscription = header.iter().position(|c| c == "SubscriptionId").unwrap();
        let amount = header
            .iter()
            .position(|c| c == "BillingPreTaxTotal")
            .unwrap();
        let mut sums: std::collections::BTreeMap<String, rust_decimal::Decimal> =
            std::collections::BTreeMap::new();
        for row in reader.records() {
            let row = row.unwrap();
            *sums.entry(row[subscription].to_owned()).or_default() +=
                row[amount].parse::<rust_decimal::Decimal>().unwrap();
        }
        let invoices = ok_json(&db, &["invoice", "list", period, "--json"]);
        let totals: std::collections::BTreeMap<String, rust_decimal::Decimal> = invoices
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["subscriptionId"].as_str().unwrap().to_owned(),
                    i["total"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(sums, totals, "{period}: rows add up to the invoices");
        assert_eq!(written["invoices"].as_u64().unwrap() as usize, totals.len());
    }
    assert!(
        std::fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")),
        "no partial file left"
    );
}

#[test]
fn the_margin_report_sets_each_line_against_its_cost() {
    let db = TestDb::new();
    let summary = ok_json(
        &db,
        &["demo", "--no-serve", "--json", "--usage-records", "20000"],
    );
    let period = summary["finalizedPeriod"].as_str().unwrap();
    let cost = ok_json(
        &db,
        &["report", "cost", "--partner", "contoso-csp", "--json"],
    );
    assert_eq!(cost["rateCard"], "azs-cost");
    let report = ok_json(&db, &["report", "margin", period, "--json"]);
    let invoices = ok_json(&db, &["invoice", "list", period, "--json"]);
    let mut amounts = std::collections::BTreeMap::new();
    for invoice in invoices.as_array().unwrap() {
        for line in invoice["lines"].as_array().unwrap() {
            amounts.insert(
                (
                    invoice["subscriptionId"].as_str().unwrap().to_owned(),
                    line["meterId"].as_str().unwrap().to_owned(),
                ),
                line["amount"].as_str().unwrap().to_owned(),
            );
        }
    }
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), amounts.len(), "a row per invoice line");
    let d = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    let mut own_use = 0;
    for row in rows {
        let key = (
            row["subscriptionId"].as_str().unwrap().to_owned(),
            row["meterId"].as_str().unwrap().to_owned(),
        );
        if row["ownUse"] == true {
            own_use += 1;
            assert!(d(&row["revenue"]).is_zero(), "{row}");
        } else {
            assert_eq!(row["revenue"].as_str().unwrap(), amounts[&key], "{row}");
        }
        if !row["margin"].is_null() {
            assert_eq!(
                d(&row["margin"]),
                d(&row["revenue"]) - d(&row["cost"]),
                "{row}"
            );
        }
    }
    assert!(
        own_use > 0,
        "the default subscription's usage is the CSP's own"
    );
    let csv = stackbill(&db, &["report", "margin", period, "--csv"]);
    let text = String::from_utf8(csv.stdout).unwrap();
    assert!(
        text.starts_with("partnerId,subscriptionId,customerName,meterId"),
        "{text}"
    );
    assert_eq!(text.lines().count(), rows.len() + 1);
}
