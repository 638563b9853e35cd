"""The calls hvac's documentation shows for transit, AppRole and token roles,
run against a Coffer server by tests/hvac_e2e_test.go (VAULT_ADDR and
VAULT_TOKEN in the environment, a root token). Every step checks its answer;
the first failure raises, prints the step and exits non-zero. The last line
printed is "hvac: all calls passed"."""

import base64
import os
import sys

import hvac
import hvac.exceptions


def b64(s):
    return base64.b64encode(s.encode()).decode()


def check(step, cond, detail=""):
    if not cond:
        raise AssertionError("%s: %s" % (step, detail))
    print("ok", step)


def refused(step, exc_type, fn):
    try:
        fn()
    except exc_type as e:
        print("ok", step, "(refused: %s)" % str(e).splitlines()[0][:120])
        return
    raise AssertionError("%s: was not refused with %s" % (step, exc_type.__name__))


def transit(client):
    client.sys.enable_secrets_engine(backend_type="transit")
    client.secrets.transit.create_key(name="hvac-key")
    key = client.secrets.transit.read_key(name="hvac-key")
    check("transit read_key", key["data"]["type"] == "aes256-gcm96", key)
    keys = client.secrets.transit.list_keys()
    check("transit list_keys", "hvac-key" in keys["data"]["keys"], keys)
    enc = client.secrets.transit.encrypt_data(name="hvac-key", plaintext=b64("hi its me hvac"))
    ct = enc["data"]["ciphertext"]
    check("transit encrypt_data", ct.startswith("vault:v1:"), ct)
    dec = client.secrets.transit.decrypt_data(name="hvac-key", ciphertext=ct)
    check("transit decrypt_data", base64.b64decode(dec["data"]["plaintext"]) == b"hi its me hvac", dec)
    client.secrets.transit.rotate_key(name="hvac-key")
    rw = client.secrets.transit.rewrap_data(name="hvac-key", ciphertext=ct)
    check("transit rewrap_data", rw["data"]["ciphertext"].startswith("vault:v2:"), rw)
    client.secrets.transit.update_key_configuration(name="hvac-key", min_decryption_version=2)
    refused("transit decrypt below min_decryption_version", hvac.exceptions.InvalidRequest,
            lambda: client.secrets.transit.decrypt_data(name="hvac-key", ciphertext=ct))
    batch = client.secrets.transit.encrypt_data(
        name="hvac-key", plaintext="", batch_input=[{"plaintext": b64("a")}, {"plaintext": b64("b")}])
    check("transit encrypt batch_input", len(batch["data"]["batch_results"]) == 2, batch)
    dk = client.secrets.transit.generate_data_key(name="hvac-key", key_type="plaintext")
    check("transit generate_data_key", len(base64.b64decode(dk["data"]["plaintext"])) == 32, dk)
    rnd = client.secrets.transit.generate_random_bytes(n_bytes=16)
    check("transit generate_random_bytes", len(base64.b64decode(rnd["data"]["random_bytes"])) == 16, rnd)
    h = client.secrets.transit.hash_data(hash_input=b64("abc"), algorithm="sha2-256", output_format="hex")
    check("transit hash_data", h["data"]["sum"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h)
    mac = client.secrets.transit.generate_hmac(name="hvac-key", hash_input=b64("abc"))
    ok = client.secrets.transit.verify_signed_data(name="hvac-key", hash_input=b64("abc"), hmac=mac["data"]["hmac"])
    check("transit generate_hmac and verify", ok["data"]["valid"] is True, ok)
    client.secrets.transit.create_key(name="hvac-sign", key_type="ed25519")
    sig = client.secrets.transit.sign_data(name="hvac-sign", hash_input=b64("signed"))
    ok = client.secrets.transit.verify_signed_data(name="hvac-sign", hash_input=b64("signed"), signature=sig["data"]["signature"])
    check("transit sign_data and verify_signed_data", ok["data"]["valid"] is True, ok)
    bad = client.secrets.transit.verify_signed_data(name="hvac-sign", hash_input=b64("other"), signature=sig["data"]["signature"])
    check("transit verify of other input", bad["data"]["valid"] is False, bad)
    refused("transit delete_key without deletion_allowed", hvac.exceptions.InvalidRequest,
            lambda: client.secrets.transit.delete_key(name="hvac-sign"))
    client.secrets.transit.update_key_configuration(name="hvac-sign", deletion_allowed=True)
    client.secrets.transit.delete_key(name="hvac-sign")
    # (hvac refuses an unknown key_type itself before sending it; the server's
    # answer to one is TestTransitRefusals'.)


def approle(client):
    client.sys.enable_auth_method(method_type="approle")
    client.sys.create_or_update_policy(name="app-pol", policy='path "secret/*" { capabilities = ["read"] }')
    client.auth.approle.create_or_update_approle(
        role_name="some-role", token_policies=["app-pol"], token_type="service", secret_id_num_uses=2)
    roles = client.auth.approle.list_roles()
    check("approle list_roles", "some-role" in roles["data"]["keys"], roles)
    role = client.auth.approle.read_role(role_name="some-role")
    check("approle read_role", role["data"]["token_policies"] == ["app-pol"], role)
    role_id = client.auth.approle.read_role_id(role_name="some-role")["data"]["role_id"]
    check("approle read_role_id", len(role_id) > 0, role_id)
    sid = client.auth.approle.generate_secret_id(role_name="some-role", metadata={"team": "hvac"})
    secret_id, accessor = sid["data"]["secret_id"], sid["data"]["secret_id_accessor"]
    check("approle generate_secret_id", secret_id and accessor, sid)
    look = client.auth.approle.read_secret_id(role_name="some-role", secret_id=secret_id)
    check("approle read_secret_id", look["data"]["metadata"] == {"team": "hvac"}, look)
    look = client.auth.approle.read_secret_id_accessor(role_name="some-role", secret_id_accessor=accessor)
    check("approle read_secret_id_accessor", look["data"]["secret_id_accessor"] == accessor, look)
    acc = client.auth.approle.list_secret_id_accessors(role_name="some-role")
    check("approle list_secret_id_accessors", accessor in acc["data"]["keys"], acc)

    login_client = hvac.Client(url=client.url)
    login = login_client.auth.approle.login(role_id=role_id, secret_id=secret_id)
    check("approle login", "app-pol" in login["auth"]["policies"] and login_client.is_authenticated(), login)
    login_client.auth.approle.login(role_id=role_id, secret_id=secret_id)
    refused("approle login with an exhausted secret id", hvac.exceptions.InvalidRequest,
            lambda: hvac.Client(url=client.url).auth.approle.login(role_id=role_id, secret_id=secret_id))

    client.auth.approle.create_custom_secret_id(role_name="some-role", secret_id="my-custom-secret")
    client.auth.approle.destroy_secret_id(role_name="some-role", secret_id="my-custom-secret")
    refused("approle login with a destroyed secret id", hvac.exceptions.InvalidRequest,
            lambda: hvac.Client(url=client.url).auth.approle.login(role_id=role_id, secret_id="my-custom-secret"))
    sid = client.auth.approle.generate_secret_id(role_name="some-role")
    client.auth.approle.destroy_secret_id_accessor(role_name="some-role", secret_id_accessor=sid["data"]["secret_id_accessor"])
    client.auth.approle.update_role_id(role_name="some-role", role_id="custom-role-id")
    check("approle update_role_id",
          client.auth.approle.read_role_id(role_name="some-role")["data"]["role_id"] == "custom-role-id")
    client.auth.approle.delete_role(role_name="some-role")


def token_roles(client):
    client.sys.create_or_update_policy(name="dev", policy='path "secret/dev/*" { capabilities = ["read"] }')
    client.auth.token.create_or_update_role(role_name="testrole", allowed_policies=["dev"], orphan=True)
    roles = client.auth.token.list_roles()
    check("token list_roles", "testrole" in roles["data"]["keys"], roles)
    role = client.auth.token.read_role(role_name="testrole")
    check("token read_role", role["data"]["allowed_policies"] == ["dev"] and role["data"]["orphan"] is True, role)
    tok = client.auth.token.create(role_name="testrole", policies=["dev"], ttl="1h")
    check("token create with role_name", tok["auth"]["policies"] == ["default", "dev"] and tok["auth"]["orphan"], tok)
    look = client.auth.token.lookup(tok["auth"]["client_token"])
    check("token lookup of the role's token", look["data"]["path"] == "auth/token/create/testrole", look)
    refused("token create with a policy outside the role", hvac.exceptions.InvalidRequest,
            lambda: client.auth.token.create(role_name="testrole", policies=["root"]))
    accs = client.auth.token.list_accessors()
    check("token list_accessors", tok["auth"]["accessor"] in accs["data"]["keys"], accs)
    client.auth.token.delete_role(role_name="testrole")


def main():
    client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    check("authenticated", client.is_authenticated())
    transit(client)
    approle(client)
    token_roles(client)
    print("hvac: all calls passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # print the step and fail the test
        print("FAILED:", type(e).__name__, e)
        sys.exit(1)
