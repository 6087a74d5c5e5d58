"""The public surface of regionmesh.model: what other packages may import."""

import regionmesh.model as model

EXPECTED = {
    "API_VERSION", "AnyResource", "ClusterInformation", "ClusterInformationSpec", "DEFAULT_TIER",
    "EndpointPort", "EntityRule", "FelixConfiguration", "FelixConfigurationSpec",
    "GlobalNetworkPolicy", "GlobalNetworkPolicySpec", "GlobalNetworkSet", "HTTPMatch", "HTTPPath",
    "HostEndpoint", "HostEndpointSpec", "ICMPFields", "IPNAT", "KINDS", "KindInfo",
    "LoadedDocument", "NetworkPolicy", "NetworkPolicySpec", "NetworkSet", "NetworkSetSpec",
    "ObjectMeta", "Port", "Profile", "ProfileSpec", "Protocol", "QoSControls",
    "RESOURCE_CLASSES", "Resource", "Rule", "RuleMetadata", "ServiceAccountMatch",
    "ServiceMatch", "Tier", "TierSpec", "WorkloadEndpoint", "WorkloadEndpointPort",
    "WorkloadEndpointSpec", "codec", "kind_info", "lookup_kind", "resource_class",
    "split_workload_endpoint_name", "validation", "workload_endpoint_name",
}  # fmt: skip


def test_all_is_exactly_the_documented_api() -> None:
    assert set(model.__all__) == EXPECTED
    assert len(model.__all__) == len(set(model.__all__))


def test_every_public_name_exists_and_is_owned_by_the_package() -> None:
    constants = {"API_VERSION", "DEFAULT_TIER", "KINDS", "RESOURCE_CLASSES", "AnyResource"}
    for name in model.__all__:
        obj = getattr(model, name)
        if name in constants:
            assert obj
            continue
        mod = getattr(obj, "__module__", None) or getattr(obj, "__name__", "")
        assert str(mod).startswith("regionmesh.model"), name


def test_pipeline_functions_are_reachable() -> None:
    for fn in ("decode", "load_documents", "load_path", "to_storage", "from_storage", "to_output"):
        assert callable(getattr(model.codec, fn))
    for fn in ("apply_defaults", "validate", "check"):
        assert callable(getattr(model.validation, fn))


def test_every_kind_has_a_class_with_matching_kind() -> None:
    assert set(model.RESOURCE_CLASSES) == set(model.KINDS)
    for kind, cls in model.RESOURCE_CLASSES.items():
        assert cls.KIND == kind
        assert cls().kind == kind
    assert model.lookup_kind("gnp") is model.KINDS["GlobalNetworkPolicy"]
