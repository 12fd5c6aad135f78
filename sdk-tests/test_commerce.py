"""azure-mgmt-commerce 6.0.1, unchanged, against a real stackbill server: usage billed to a
subscription, page after page, hourly and daily, with and without details; the rate card."""

import datetime
import json
import ssl
import urllib.request
from decimal import Decimal

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.azurestack import AzureStackManagementClient
from azure.mgmt.azurestack.models import RegistrationParameter
from azure.mgmt.commerce import UsageManagementClient

import conftest
from conftest import CUSTOMER_SUB, DEFAULT_SUB, PARTNER, TENANT, registration_token

CLOUD = "ca000000-0000-0000-0000-0000000000f1"
METERS = ["b4438d5d-453b-4ee1-b42a-dc72e377f1e4", "f271a8a3-88c4-4d93-956a-063e1d2fa80b"]
DAYS = 30
RESOURCES = 20
START = datetime.datetime(2025, 5, 1, tzinfo=datetime.timezone.utc)


def native(server, method, path, body=None, content_type="application/json"):
    request = urllib.request.Request(
        server["url"] + path, method=method, data=body.encode() if body else None,
        headers={"Authorization": "Bearer " + conftest.ADMIN_TOKEN, "Content-Type": content_type},
    )
    context = ssl.create_default_context(cafile=server["cert"]) if "cert" in server else None
    with urllib.request.urlopen(request, context=context) as response:
        return json.loads(response.read() or b"null")


def commerce(server, subscription):
    return server["client"](UsageManagementClient, subscription)


@pytest.fixture(scope="module")
def usage(server):
    # One stack per scheme: each scheme's server has its own database.
    """Two meters, two resources, every hour of 30 days of May 2025 on a new stack, billed to the
    default subscription; each record reported one hour after its usage hour."""
    azs = server["client"](AzureStackManagementClient, DEFAULT_SUB)
    azs.registrations.create_or_update(
        "azurestack", "usage-hub", RegistrationParameter(location="global", registration_token=registration_token(CLOUD))
    )
    lines, expected = [], {}
    for hour in range(DAYS * 24):
        start = START + datetime.timedelta(hours=hour)
        for m, meter in enumerate(METERS):
            quantity = Decimal(hour % 7 + m) + Decimal("0.125")
            expected[meter] = expected.get(meter, Decimal(0)) + quantity
            lines.append(json.dumps({
                "id": f"u-{meter[:4]}-{hour}", "cloudId": CLOUD, "tenantId": TENANT,
                "subscriptionId": "50000000-0000-0000-0000-000000000001", "meterId": meter,
                "quantity": str(quantity),
                "usageStartTime": start.isoformat(), "usageEndTime": (start + datetime.timedelta(hours=1)).isoformat(),
                "reportedTime": (start + datetime.timedelta(hours=2)).isoformat(),
                "instanceData": {"Microsoft.Resources": {"resourceUri": f"/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{hour % RESOURCES}", "location": "local"}},
            }))
    answer = native(server, "POST", "/v1/usage", "\n".join(lines), "application/x-ndjson")
    assert answer["accepted"] == len(lines), answer
    return expected


def collect(pages):
    totals, count = {}, 0
    for item in pages:
        count += 1
        totals[item.meter_id] = totals.get(item.meter_id, Decimal(0)) + Decimal(str(item.quantity))
    return count, totals


@pytest.mark.parametrize("granularity,details,lines", [
    ("Hourly", False, DAYS * 24 * 2),
    ("Daily", False, DAYS * 2),
    ("Hourly", True, DAYS * 24 * 2),
    ("Daily", True, DAYS * 2 * RESOURCES),
])
def test_usage_aggregates_page_through_and_add_up(server, usage, granularity, details, lines):
    # Buckets follow the usage time; the query window is on reported time, a day longer.
    client = commerce(server, DEFAULT_SUB)
    pages = client.usage_aggregates.list(
        START, START + datetime.timedelta(days=DAYS + 1), show_details=details, aggregation_granularity=granularity
    )
    count, totals = collect(pages)
    assert count == lines
    assert totals == usage
    if details:
        item = next(iter(client.usage_aggregates.list(
            START, START + datetime.timedelta(days=1), show_details=True, aggregation_granularity="Daily")))
        resources = json.loads(item.instance_data)["Microsoft.Resources"]
        assert resources["resourceUri"].startswith("/subscriptions/x/resourceGroups/rg/")


def test_usage_is_selected_by_reported_time(server, usage):
    # Reported one hour late: the first hour of May reports within May 1, the last of May 30
    # reports on May 31.
    client = commerce(server, DEFAULT_SUB)
    count, _ = collect(client.usage_aggregates.list(
        START, START + datetime.timedelta(days=1), aggregation_granularity="Hourly"))
    assert count == 22 * 2


def test_usage_errors_arrive_with_their_codes(server, usage):
    client = commerce(server, DEFAULT_SUB)
    with pytest.raises(HttpResponseError) as granularity:
        list(client.usage_aggregates.list(START, START + datetime.timedelta(days=1), aggregation_granularity="Weekly"))
    assert granularity.value.error.code == "InvalidAggregationGranularity"
    future = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0) + datetime.timedelta(hours=2)
    with pytest.raises(HttpResponseError) as late:
        list(client.usage_aggregates.list(START, future, aggregation_granularity="Hourly"))
    assert late.value.error.code == "RequestEndTimeIsInFuture"
    with pytest.raises(HttpResponseError) as unaligned:
        list(client.usage_aggregates.list(START + datetime.timedelta(hours=1), START + datetime.timedelta(days=1)))
    assert unaligned.value.error.code == "InvalidProperty"


def test_rate_card_applies_the_subscriptions_markup(server):
    native(server, "PUT", "/v1/ratecards/default", json.dumps({"currency": "USD", "meters": [
        {"meterId": METERS[0], "rates": {"0": "0.5", "100": "0.25"}, "includedQuantity": "2"}]}))
    native(server, "PUT", f"/v1/subscriptions/{CUSTOMER_SUB}", json.dumps(
        {"offerType": "CSP", "partnerId": PARTNER, "customerTenantId": TENANT, "markupPercent": "10"}))
    card = commerce(server, CUSTOMER_SUB).rate_card.get(
        "OfferDurableId eq 'MS-AZR-0145P' and Currency eq 'USD' and Locale eq 'en-US' and RegionInfo eq 'US'")
    assert card.currency == "USD"
    assert card.is_tax_included is False
    meter = card.meters[0]
    assert meter.meter_id == METERS[0]
    assert meter.meter_name == "TableCapacity"
    assert meter.meter_rates == {"0": pytest.approx(0.55), "100": pytest.approx(0.275)}
    assert meter.included_quantity == pytest.approx(2)
    with pytest.raises(HttpResponseError) as incomplete:
        commerce(server, CUSTOMER_SUB).rate_card.get("Currency eq 'USD'")
    assert incomplete.value.error.code == "InvalidProperty"
