"""azure-mgmt-azurestack 1.0.1, unchanged, against a real stackbill server over HTTP (with an
authentication policy that sends the token, as the SDK allows for non-Azure endpoints)."""

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.azurestack import AzureStackManagementClient
from azure.mgmt.azurestack.models import CustomerSubscription, RegistrationParameter

import conftest
from conftest import CUSTOMER_SUB, DEFAULT_SUB, EA_SUB, FOREIGN_SUB, OTHER_TENANT, TENANT, registration_token

GROUP = "azurestack"
CLOUD = "ca000000-0000-0000-0000-0000000000a1"


def client(server, subscription=DEFAULT_SUB, token=conftest.ADMIN_TOKEN, api_version=None):
    kwargs = {"api_version": api_version} if api_version else {}
    return server["client"](AzureStackManagementClient, subscription, token=token, **kwargs)


def unique(server, name):
    """Registration names and clouds are global: each scheme's run uses its own."""
    return f"{name}-{server['scheme']}"


def cloud(server, suffix):
    return CLOUD[:-3] + ("1" if server["scheme"] == "http" else "2") + suffix


def registration_body(cloud_id, billing_model="PayAsYouUse"):
    """The body of a registration PUT: a token for the stack, as Azure Stack's tools send it."""
    return RegistrationParameter(location="global", registration_token=registration_token(cloud_id, billing_model))


@pytest.mark.parametrize("api_version", [None, "2017-06-01", "2022-06-01"])
def test_registration_lifecycle(server, api_version):
    azs = client(server, api_version=api_version)
    name = unique(server, f"hub-{api_version or 'default'}")
    cloud_id = cloud(server, {None: "a1", "2017-06-01": "a2", "2022-06-01": "a3"}[api_version])
    created = azs.registrations.create_or_update(GROUP, name, registration_body(cloud_id))
    assert created.name == name
    assert created.cloud_id == cloud_id
    assert created.billing_model == "PayAsYouUse"
    assert created.type == "Microsoft.AzureStack/registrations"
    got = azs.registrations.get(GROUP, name)
    assert got.id.endswith(f"/registrations/{name}")
    updated = azs.registrations.update(GROUP, name, registration_body(cloud_id, "Development"))
    assert updated.billing_model == "Development"
    assert name in [r.name for r in azs.registrations.list(GROUP)]
    assert name in [r.name for r in azs.registrations.list_by_subscription()]
    assert azs.registrations.get_activation_key(GROUP, name).activation_key
    azs.registrations.enable_remote_management(GROUP, name)
    azs.registrations.delete(GROUP, name)
    with pytest.raises(ResourceNotFoundError) as missing:
        azs.registrations.get(GROUP, name)
    assert missing.value.error.code == "RegistrationNotFound"


def test_customer_subscriptions(server):
    azs = client(server)
    hub = unique(server, "csp-hub")
    azs.registrations.create_or_update(GROUP, hub, registration_body(cloud(server, "b1")))
    created = azs.customer_subscriptions.create(GROUP, hub, CUSTOMER_SUB, CustomerSubscription(tenant_id=TENANT))
    assert created.tenant_id == TENANT
    assert created.name == f"{hub}/{CUSTOMER_SUB}"
    listed = list(azs.customer_subscriptions.list(GROUP, hub))
    assert [c.tenant_id for c in listed] == [TENANT]
    assert azs.customer_subscriptions.get(GROUP, hub, CUSTOMER_SUB).tenant_id == TENANT
    # Re-putting the same tenant replaces its mapping (200 again).
    azs.customer_subscriptions.create(GROUP, hub, CUSTOMER_SUB, CustomerSubscription(tenant_id=TENANT))
    azs.customer_subscriptions.delete(GROUP, hub, CUSTOMER_SUB)
    with pytest.raises(ResourceNotFoundError) as missing:
        azs.customer_subscriptions.get(GROUP, hub, CUSTOMER_SUB)
    assert missing.value.error.code == "CustomerSubscriptionNotFound"


@pytest.mark.parametrize(
    "registration,subscription,tenant,code",
    [
        ("csp-errors", EA_SUB, TENANT, "InvalidCSPSubscription"),
        ("csp-errors", FOREIGN_SUB, OTHER_TENANT, "BadCustomerSubscriptionId"),
        ("csp-errors", "c0000000-0000-0000-0000-0000000000ff", TENANT, "InvalidCustomerSubscriptionId"),
        ("csp-errors", CUSTOMER_SUB, OTHER_TENANT, "TenantMismatch"),
        ("no-such-registration", CUSTOMER_SUB, TENANT, "RegistrationNotFound"),
        ("capacity-hub", CUSTOMER_SUB, TENANT, "CustomerSubscriptionsNotAllowed"),
    ],
)
def test_customer_subscription_errors_arrive_with_their_codes(server, registration, subscription, tenant, code):
    azs = client(server)
    azs.registrations.create_or_update(
        GROUP, unique(server, "csp-errors"),
        registration_body(cloud(server, "c1")),
    )
    azs.registrations.create_or_update(
        GROUP, unique(server, "capacity-hub"),
        registration_body(cloud(server, "c2"), "Capacity"),
    )
    with pytest.raises(HttpResponseError) as error:
        azs.customer_subscriptions.create(
            GROUP, unique(server, registration), subscription, CustomerSubscription(tenant_id=tenant)
        )
    assert error.value.error.code == code


def test_registration_errors_arrive_with_their_codes(server):
    azs = client(server)
    azs.registrations.create_or_update(GROUP, unique(server, "first"), registration_body(cloud(server, "d1")))
    with pytest.raises(HttpResponseError) as taken:
        azs.registrations.create_or_update(
            GROUP, unique(server, "second"),
            registration_body(cloud(server, "d1")),
        )
    assert taken.value.error.code == "CloudIdAlreadyRegistered"
    with pytest.raises(HttpResponseError) as recloud:
        azs.registrations.create_or_update(
            GROUP, unique(server, "first"),
            registration_body(cloud(server, "d4")),
        )
    assert recloud.value.error.code == "CloudIdChange"
    other_default = client(server, subscription=EA_SUB)
    with pytest.raises(HttpResponseError) as moved:
        other_default.registrations.create_or_update(
            GROUP, unique(server, "first"),
            registration_body(cloud(server, "d1")),
        )
    assert moved.value.error.code == "DefaultSubscriptionChange"
    ea = client(server, subscription=EA_SUB)
    ea.registrations.create_or_update(GROUP, unique(server, "ea-hub"), registration_body(cloud(server, "d2")))
    with pytest.raises(HttpResponseError) as unauthorized:
        ea.customer_subscriptions.create(
            GROUP, unique(server, "ea-hub"), CUSTOMER_SUB, CustomerSubscription(tenant_id=TENANT)
        )
    assert unauthorized.value.error.code == "UnauthorizedCspRegistration"
    nobody = client(server, subscription="d0000000-0000-0000-0000-0000000000ff")
    with pytest.raises(HttpResponseError) as missing_default:
        nobody.registrations.create_or_update(
            GROUP, unique(server, "orphan"),
            registration_body(cloud(server, "d3")),
        )
    assert missing_default.value.error.code == "InvalidCustomerSubscriptionId"


def test_a_bad_token_is_a_client_authentication_error(server):
    with pytest.raises(ClientAuthenticationError) as error:
        client(server, token="not-a-token").registrations.get(GROUP, unique(server, "first"))
    assert error.value.error.code == "InvalidAuthenticationToken"
