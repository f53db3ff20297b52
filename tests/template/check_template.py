"""Checks the SAM template for the properties a security review asks about, each of which
cfn-lint and checkov cannot see. Run by scripts/test with the tool venv's Python (it reads
the template with cfn-lint's own loader, which knows CloudFormation's short tags):

    python3 tests/template/check_template.py template.yaml

Each check is also run against a copy of the template broken the way it guards against,
and must fail there: a check that cannot fail proves nothing.
"""

import copy
import json
import sys

from cfnlint.decode import decode

# Actions that name no resource in IAM, so "*" is the only possible Resource.
RESOURCELESS_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "dynamodb:ListStreams",
}
FUNCTIONS_WITH_KEYS = {"ConfirmResetFunction", "SendResetEmailFunction"}
RETENTION_MIN_DAYS = 1


def resources(t, kind):
    return {name: r for name, r in t["Resources"].items() if r.get("Type") == kind}


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(role):
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            # Fn::If statements: both branches are statements the role may hold.
            if isinstance(statement, dict) and "Fn::If" in statement:
                for branch in statement["Fn::If"][1:]:
                    if isinstance(branch, dict) and "Ref" not in branch:
                        yield branch
            else:
                yield statement


def check_no_keys_in_environments(t):
    functions = resources(t, "AWS::Serverless::Function")
    globals_env = t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    problems = [f"Globals sets {v}" for v in globals_env if v.startswith("TOKEN_KEYS") and v != "TOKEN_KEYS_REVISION"]
    for name, f in functions.items():
        env = f["Properties"].get("Environment", {}).get("Variables", {})
        if "TOKEN_KEYS" in env:
            problems.append(f"{name} has TOKEN_KEYS in its environment")
        if name in FUNCTIONS_WITH_KEYS and "TOKEN_KEYS_SECRET_ID" not in env:
            problems.append(f"{name} has no TOKEN_KEYS_SECRET_ID")
        if name not in FUNCTIONS_WITH_KEYS and "TOKEN_KEYS_SECRET_ID" in env:
            problems.append(f"{name} is given the token keys it does not use")
    return problems


def check_explicit_least_privilege_roles(t):
    problems = []
    roles = resources(t, "AWS::IAM::Role")
    for name, f in resources(t, "AWS::Serverless::Function").items():
        props = f["Properties"]
        if "Policies" in props:
            problems.append(f"{name}: SAM Policies (SAM adds managed policies to its role)")
        role = props.get("Role", {}).get("Fn::GetAtt", [None])[0]
        if role not in roles:
            problems.append(f"{name}: no role of this template")
            continue
        for statement in statements(roles[role]):
            actions = as_list(statement["Action"])
            for resource in as_list(statement["Resource"]):
                if resource == "*" and not set(actions) <= RESOURCELESS_ACTIONS:
                    problems.append(f"{role}: {actions} on every resource")
            if "secretsmanager:GetSecretValue" in actions and "*" in json.dumps(statement["Resource"]):
                problems.append(f"{role}: GetSecretValue beyond the one secret")
        if roles[role]["Properties"].get("ManagedPolicyArns"):
            problems.append(f"{role}: managed policies")
    return problems


def check_logs(t):
    problems = []
    groups = resources(t, "AWS::Logs::LogGroup")
    for name, f in resources(t, "AWS::Serverless::Function").items():
        logging = f["Properties"].get("LoggingConfig", {})
        if logging.get("LogFormat") != "JSON":
            problems.append(f"{name}: logs are not JSON")
        group = logging.get("LogGroup", {}).get("Ref")
        if group not in groups:
            problems.append(f"{name}: no log group of this template")
    for name, g in groups.items():
        if "RetentionInDays" not in g["Properties"]:
            problems.append(f"{name}: kept forever")
    api = resources(t, "AWS::Serverless::HttpApi")
    for name, a in api.items():
        if "AccessLogSettings" not in a["Properties"]:
            problems.append(f"{name}: no access log")
    return problems


def check_stream_consumer(t):
    problems = []
    f = t["Resources"]["SendResetEmailFunction"]["Properties"]
    outbox = f["Events"]["Outbox"]["Properties"]
    patterns = [json.loads(p["Pattern"]) for p in outbox.get("FilterCriteria", {}).get("Filters", [])]
    if not any(p.get("eventName") == ["INSERT"] and "OUTBOX#" in json.dumps(p) for p in patterns):
        problems.append("send-reset-email is invoked for more than outbox inserts")
    if "OnFailure" not in outbox.get("DestinationConfig", {}):
        problems.append("failed stream batches are recorded nowhere")
    return problems


def check_tables_and_edge(t):
    problems = []
    for name, table in resources(t, "AWS::DynamoDB::Table").items():
        if table["Properties"].get("DeletionProtectionEnabled") is not True:
            problems.append(f"{name}: no deletion protection")
    request = t["Resources"]["RequestResetFunction"]["Properties"]["Events"]
    if not any(e["Type"] == "HttpApi" and "Path" not in e["Properties"] and "Method" not in e["Properties"] for e in request.values()):
        problems.append("no $default route: API Gateway answers unknown paths itself")
    return problems


def check_skips_have_reasons(t):
    problems = []
    for name, r in t["Resources"].items():
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", []):
            if len(str(skip.get("comment", "")).strip()) < 40:
                problems.append(f"{name}: {skip.get('id')} skipped without a reason")
    return problems


def check_alarms_reach_someone(t):
    problems = []
    for name, alarm in resources(t, "AWS::CloudWatch::Alarm").items():
        if not alarm["Properties"].get("AlarmActions"):
            problems.append(f"{name}: reaches nobody")
    return problems


def check_sam_local_env_file(t):
    """`sam local --env-vars env.json` only sets variables the template declares."""
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(TEMPLATE_PATH[0])), "env.json")
    if not os.path.exists(path):
        return ["env.json is missing"]
    wanted = json.load(open(path, encoding="utf-8")).get("Parameters", {})
    declared = set(t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    for f in resources(t, "AWS::Serverless::Function").values():
        declared |= set(f["Properties"].get("Environment", {}).get("Variables", {}))
    return [f"env.json sets {name}, which no function declares (sam local ignores it)" for name in wanted if name not in declared]


TEMPLATE_PATH = ["template.yaml"]

CHECKS = [
    check_no_keys_in_environments,
    check_explicit_least_privilege_roles,
    check_logs,
    check_stream_consumer,
    check_tables_and_edge,
    check_skips_have_reasons,
    check_alarms_reach_someone,
    check_sam_local_env_file,
]


def breakages():
    """For each check, a way to break the template that it must notice."""

    def key_in_env(t):
        t["Resources"]["ConfirmResetFunction"]["Properties"]["Environment"]["Variables"]["TOKEN_KEYS"] = "x"

    def sam_policies(t):
        t["Resources"]["SendResetEmailFunction"]["Properties"]["Policies"] = ["AWSLambdaDynamoDBExecutionRole"]

    def star_secret(t):
        role = t["Resources"]["ConfirmResetRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        role["Statement"].append({"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"})

    def forever_logs(t):
        del t["Resources"]["RequestResetLogGroup"]["Properties"]["RetentionInDays"]

    def no_filter(t):
        del t["Resources"]["SendResetEmailFunction"]["Properties"]["Events"]["Outbox"]["Properties"]["FilterCriteria"]

    def no_protection(t):
        t["Resources"]["Table"]["Properties"]["DeletionProtectionEnabled"] = False

    def bare_skip(t):
        t["Resources"]["Table"]["Metadata"]["checkov"]["skip"][0]["comment"] = ""

    def silent_alarm(t):
        del t["Resources"]["OutboxIteratorAgeAlarm"]["Properties"]["AlarmActions"]

    def undeclared_env(t):
        del t["Resources"]["SendResetEmailFunction"]["Properties"]["Environment"]["Variables"]["MAIL_FROM"]

    return [
        (check_no_keys_in_environments, key_in_env),
        (check_explicit_least_privilege_roles, sam_policies),
        (check_explicit_least_privilege_roles, star_secret),
        (check_logs, forever_logs),
        (check_stream_consumer, no_filter),
        (check_tables_and_edge, no_protection),
        (check_skips_have_reasons, bare_skip),
        (check_alarms_reach_someone, silent_alarm),
        (check_sam_local_env_file, undeclared_env),
    ]


def main(path):
    TEMPLATE_PATH[0] = path
    text = open(path, encoding="utf-8").read()
    template, matches = decode(path)
    if matches or template is None:
        print(f"{path}: cannot be read: {matches}")
        return 1
    failed = False
    # CloudFormation itself refuses YAML aliases (only `sam deploy` would expand them).
    if any(line.lstrip().startswith(("&", "*")) or ": *" in line or ": &" in line for line in text.splitlines()):
        print(f"{path}: YAML anchors or aliases (CloudFormation refuses them)")
        failed = True
    for check in CHECKS:
        problems = check(template)
        for problem in problems:
            print(f"{check.__name__}: {problem}")
        failed |= bool(problems)
    for check, breakage in breakages():
        broken = copy.deepcopy(template)
        breakage(broken)
        if not check(broken):
            print(f"{check.__name__} does not notice {breakage.__name__}")
            failed = True
    if not failed:
        print(f"{path}: {len(CHECKS)} checks pass, and each fails on a template broken its way")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml"))
