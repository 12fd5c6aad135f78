"""The console as people use it, in a real browser: sign in, read the month end, and find
exactly the API's numbers; another partner's invoice is missing; a form without its CSRF
token is refused; no page logs an error."""

import datetime
import os

import pytest

from conftest import ADMIN_TOKEN


class Tab:
    """A page that records every console error and failed request."""

    def __init__(self, context):
        self.page = context.new_page()
        self.errors = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))

    def goto(self, url):
        return self.page.goto(url)

    def clean(self):
        """Asserts no error was logged, and the stylesheet applied (its SRI hash held)."""
        assert self.errors == []
        family = self.page.evaluate("getComputedStyle(document.body).fontFamily")
        assert "system-ui" in family, family


def sign_in(browser, server, token, **context_options):
    context = browser.new_context(**context_options)
    tab = Tab(context)
    tab.goto(server.base + "/")
    assert tab.page.url.endswith("/login")
    tab.page.fill("#token", token)
    tab.page.click("button[type=submit]")
    tab.page.wait_for_load_state()
    return context, tab


def utc_today():
    """Today as the server counts months: in UTC."""
    return datetime.datetime.now(datetime.timezone.utc).date()


def months():
    today = utc_today()
    this = today.strftime("%Y-%m")
    last = (today.replace(day=1) - datetime.timedelta(days=1)).strftime("%Y-%m")
    return last, this


def test_the_month_end_reads_as_the_api_says(browser, server, screenshots):
    last, this = months()
    context, tab = sign_in(browser, server, ADMIN_TOKEN)
    page = tab.page
    assert page.url == server.base + "/", page.url
    tab.clean()
    page.screenshot(path=os.path.join(screenshots, "overview.png"), full_page=True)

    # One chart per charted meter, drawn by the vendored uPlot (its SRI hash held).
    charted = page.evaluate("JSON.parse(document.getElementById('usage-data').textContent).meters.length")
    if any(i["lines"] for i in server.api(f"/v1/invoices?period={this}")["value"]):
        assert charted > 0
        page.wait_for_selector("#usage-charts figure.chart canvas")
    assert len(page.query_selector_all("#usage-charts figure.chart canvas")) == charted

    # The overview's subscriptions are this month's invoices, total for total.
    api = server.api(f"/v1/invoices?period={this}")["value"]
    shown = {
        row.query_selector("td:nth-child(2)").inner_text(): row.query_selector("td.num").inner_text()
        for row in page.query_selector_all("#revenue tbody tr")
    }
    assert shown == {i["subscriptionId"]: f"{i['total']} {i['currency']}" for i in api}

    # Last month's invoices, all final, and one of them line by line.
    tab.goto(f"{server.base}/invoices?period={last}")
    tab.clean()
    page.screenshot(path=os.path.join(screenshots, "invoices.png"), full_page=True)
    finals = server.api(f"/v1/invoices?period={last}")["value"]
    rows = page.query_selector_all("#invoices tbody tr")
    assert len(rows) == len(finals)
    assert all(r.query_selector("span.tag").inner_text() == "final" for r in rows)
    invoice = max(finals, key=lambda i: len(i["lines"]))
    page.click(f"a[href='/invoices/{invoice['subscriptionId']}/{last}']")
    page.wait_for_load_state()
    tab.clean()
    page.screenshot(path=os.path.join(screenshots, "invoice.png"), full_page=True)
    assert page.inner_text("#total") == invoice["total"]
    assert len(page.query_selector_all("#lines tbody tr")) == len(invoice["lines"])
    for line in invoice["lines"]:
        assert line["meterName"] in page.inner_text("#lines")

    # This month's draft with the adjustment carrying last month's late record.
    adjusted = next(i for i in api if i["adjustments"])
    tab.goto(f"{server.base}/invoices/{adjusted['subscriptionId']}/{this}")
    tab.clean()
    assert "LateUsage" in page.inner_text("#adjustments")
    assert page.inner_text("#total") == adjusted["total"]

    # Finalizing this month from the console (offered only for ended months, so asked for
    # by address): confirmed, then refused by the API's rule.
    tab.goto(f"{server.base}/invoices?period={this}")
    assert page.query_selector(f"a[href='/finalize?period={this}']") is None
    tab.goto(f"{server.base}/finalize?period={this}")
    tab.clean()
    assert "cannot be undone" in page.inner_text("main")
    page.screenshot(path=os.path.join(screenshots, "finalize.png"))
    with page.expect_response(lambda r: r.url.endswith("/finalize")) as answer:
        page.click("main button[type=submit]")
    assert answer.value.status == 409
    assert "has not ended yet" in page.inner_text("[role=alert]")
    tab.errors = [e for e in tab.errors if "409" not in e]
    tab.clean()
    assert server.api(f"/v1/invoices?period={this}")["value"][0]["status"] == "draft"

    # A line's raw records add up to it.
    tab.goto(f"{server.base}/invoices/{invoice['subscriptionId']}/{last}")
    first = invoice["lines"][0]
    page.click(f"#lines a[href$='meter={first['meterId']}']")
    page.wait_for_load_state()
    tab.clean()
    assert f"{first['quantity']} {first['unit']} in all" in page.inner_text("main")

    # Dark and narrow: the same pages render, with no error.
    dark = browser.new_context(color_scheme="dark", viewport={"width": 390, "height": 844})
    dark.add_cookies(context.cookies())
    narrow = Tab(dark)
    narrow.goto(server.base + "/")
    narrow.clean()
    narrow.page.screenshot(path=os.path.join(screenshots, "overview-dark-phone.png"), full_page=True)
    background = narrow.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 20, 24)", background
    dark.close()

    # Signing out ends the session.
    page.click("header button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith("/login")
    tab.goto(server.base + "/")
    assert page.url.endswith("/login")
    context.close()


def test_another_partners_invoice_is_missing_and_forms_need_their_csrf_token(browser, server, screenshots):
    last, _ = months()
    server.cli("partner", "add", "fabrikam-csp", "--name", "Fabrikam")
    created = server.api("/v1/tokens", method="POST",
                         body={"role": "partner", "partnerId": "fabrikam-csp", "name": "browser"})
    context, tab = sign_in(browser, server, created["token"])
    tab.clean()
    contoso = server.api(f"/v1/invoices?period={last}")["value"][0]
    answer = tab.goto(f"{server.base}/invoices/{contoso['subscriptionId']}/{last}")
    assert answer.status == 404
    assert "Not found" in tab.page.inner_text("h1")
    assert contoso["total"] not in tab.page.inner_text("main")
    tab.page.screenshot(path=os.path.join(screenshots, "not-found.png"))
    tab.goto(f"{server.base}/invoices?period={last}")
    assert contoso["subscriptionId"] not in tab.page.inner_text("main")

    status = tab.page.evaluate(
        """fetch('/logout', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'csrf=forged'}).then(r => r.status)"""
    )
    assert status == 403
    context.close()


def test_a_wrong_token_is_named_and_the_sign_in_page_is_clean(browser, server, screenshots):
    context = browser.new_context()
    tab = Tab(context)
    tab.goto(server.base + "/login")
    tab.page.screenshot(path=os.path.join(screenshots, "sign-in.png"))
    tab.page.fill("#token", "not-a-token")
    tab.page.click("button[type=submit]")
    tab.page.wait_for_load_state()
    assert "not valid" in tab.page.inner_text("[role=alert]")
    # The 401 answer itself is the one expected failure the browser logs.
    tab.errors = [e for e in tab.errors if "401" not in e]
    tab.clean()
    context.close()


def test_an_unmapped_tenant_is_mapped_from_the_console_and_the_api_sees_it(browser, server, screenshots):
    context, tab = sign_in(browser, server, ADMIN_TOKEN)
    page = tab.page
    link = page.query_selector("#unmapped a")
    assert link is not None, "the demo has tenants billed to a default subscription"
    href = link.get_attribute("href")
    registration = href.split("/")[2].split("?")[0]
    tenant = href.split("tenant=")[1]
    subscriptions = server.api("/v1/subscriptions?$top=1000")["value"]
    own = next(s for s in subscriptions if s.get("customerTenantId") == tenant)
    link.click()
    page.wait_for_load_state()
    tab.clean()
    assert page.input_value("#tenant") == tenant
    page.fill("#subscription", own["subscriptionId"])
    page.click("form[action$='/map'] button[type=submit]")
    page.wait_for_load_state()
    tab.clean()
    assert f"Tenant {tenant} is billed to {own['subscriptionId']}" in page.inner_text("[role=status]")
    page.screenshot(path=os.path.join(screenshots, "stack.png"), full_page=True)
    mapping = server.api(f"/v1/registrations/{registration}/customerSubscriptions/{own['subscriptionId']}")
    assert mapping["tenantId"] == tenant
    context.close()


def test_a_price_set_in_the_console_is_the_apis(browser, server, screenshots):
    context, tab = sign_in(browser, server, ADMIN_TOKEN)
    page = tab.page
    tab.goto(server.base + "/ratecards")
    tab.clean()
    page.click("a[href='/ratecards/shared/default']")
    page.wait_for_load_state()
    tab.clean()
    page.screenshot(path=os.path.join(screenshots, "ratecard.png"), full_page=True)
    meter = server.api("/v1/ratecards/default")["meters"][0]["meterId"]
    page.fill("#meter", meter)
    page.fill("#price", "0.0123")
    page.fill("#tiers", "1000=0.011")
    page.fill("#effective_from", "2030-01-01T00:00:00Z")
    page.click("form[action$='/price'] button[type=submit]")
    page.wait_for_load_state()
    tab.clean()
    assert "is priced 0.0123" in page.inner_text("[role=status]")
    entries = [m for m in server.api("/v1/ratecards/default")["meters"]
               if m["meterId"] == meter and m["effectiveDate"] == "2030-01-01T00:00:00Z"]
    assert entries and entries[0]["rates"] == {"0": "0.0123", "1000": "0.011"}
    context.close()


def test_a_customer_is_found_by_name_and_shown_with_its_usage_and_invoices(browser, server, screenshots):
    context, tab = sign_in(browser, server, ADMIN_TOKEN)
    page = tab.page
    tab.goto(server.base + "/customers")
    tab.clean()
    page.fill("#q", "northwind")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_load_state()
    tab.clean()
    rows = page.query_selector_all("#customers tbody tr a")
    assert len(rows) == 1, page.inner_text("#customers")
    rows[0].click()
    page.wait_for_load_state()
    tab.clean()
    assert "Northwind Traders" in page.inner_text("h1")
    charted = page.evaluate("JSON.parse(document.getElementById('usage-data').textContent).meters.length")
    if charted:
        page.wait_for_selector("#usage-charts figure.chart canvas")
    assert len(page.query_selector_all("#usage-charts figure.chart canvas")) == charted
    page.screenshot(path=os.path.join(screenshots, "customer.png"), full_page=True)
    subscription = page.url.rsplit("/", 1)[1]
    last, this = months()
    for month in (last, this):
        total = server.api(f"/v1/invoices/{subscription}/{month}")["total"]
        assert total in page.inner_text("#customer-invoices")
    context.close()


def test_an_invoices_changes_and_a_customers_registration_status(browser, server, screenshots):
    last, this = months()
    adjusted = next(i for i in server.api(f"/v1/invoices?period={this}")["value"] if i["adjustments"])
    context, tab = sign_in(browser, server, ADMIN_TOKEN)
    page = tab.page
    tab.goto(f"{server.base}/invoices/{adjusted['subscriptionId']}/{this}")
    page.click("a:text('What changed')")
    page.wait_for_load_state()
    tab.clean()
    assert "LateUsage" in page.inner_text("#adjustment-changes")
    assert "late records" not in page.inner_text("#meter-changes")
    page.screenshot(path=os.path.join(screenshots, "diff.png"), full_page=True)
    context.close()

    subscription = server.api(f"/v1/subscriptions/{adjusted['subscriptionId']}")
    tenant = subscription["customerTenantId"]
    created = server.api("/v1/tokens", method="POST", body={
        "role": "customer", "partnerId": subscription["partnerId"], "tenantId": tenant, "name": "browser"})
    context, tab = sign_in(browser, server, created["token"])
    tab.clean()
    assert "Your registration" in tab.page.inner_text("h1")
    assert adjusted["total"] not in tab.page.inner_text("main")
    tab.page.screenshot(path=os.path.join(screenshots, "customer-registration.png"))
    context.close()


def test_a_month_is_finalized_from_the_console_after_confirming(browser, server, screenshots):
    # The month before last: ended, and not final (the demo finalizes last month only).
    first_of_last = (utc_today().replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
    month = (first_of_last - datetime.timedelta(days=1)).strftime("%Y-%m")
    context, tab = sign_in(browser, server, ADMIN_TOKEN)
    page = tab.page
    tab.goto(f"{server.base}/finalize?period={month}")
    tab.clean()
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    tab.clean()
    assert f"{month} is final" in page.inner_text("[role=status]")
    page.screenshot(path=os.path.join(screenshots, "finalized.png"))
    context.close()


def test_the_margin_page_charts_each_customer_and_a_webhook_is_added(browser, server, screenshots):
    last, _ = months()
    context, tab = sign_in(browser, server, ADMIN_TOKEN)
    page = tab.page
    tab.goto(f"{server.base}/reports/margin?period={last}")
    tab.clean()
    api = server.api(f"/v1/reports/margin?period={last}")
    total = api["totals"][0]
    assert page.inner_text("#totals .big") == total["margin"]
    bars = page.locator("svg.bars rect.revenue").count()
    customers = {r["subscriptionId"] for r in api["rows"] if r["margin"] is not None}
    assert bars == len(customers)
    page.screenshot(path=os.path.join(screenshots, "margin.png"), full_page=True)

    tab.goto(server.base + "/webhooks")
    tab.clean()
    page.fill("#partner", "contoso-csp")
    page.fill("#url", "https://hooks.example.com/stackbill")
    page.check("input[name='invoice.finalized']")
    page.check("input[name='usage.rejected']")
    page.click("form[action='/webhooks'] button[type=submit]")
    page.wait_for_load_state()
    tab.clean()
    assert page.inner_text("#secret").startswith("whsec_")
    endpoints = server.api("/v1/webhooks?partnerId=contoso-csp")["value"]
    assert [e["eventTypes"] for e in endpoints] == [["invoice.finalized", "usage.rejected"]]
    page.screenshot(path=os.path.join(screenshots, "webhooks.png"), full_page=True)

    # An invoice's PDF downloads from its page.
    invoice = server.api(f"/v1/invoices?period={last}")["value"][0]
    tab.goto(f"{server.base}/invoices/{invoice['subscriptionId']}/{last}")
    tab.clean()
    with page.expect_download() as download:
        page.click("#pdf")
    path = download.value.path()
    with open(path, "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    assert download.value.suggested_filename == f"{invoice['invoiceNumber']}.pdf"
    context.close()
