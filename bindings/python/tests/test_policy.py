"""Bucket policies."""

from __future__ import annotations

import json

import pytest

import ssekit
from conftest import SSE

DENY_UNENCRYPTED = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "DenyUnencrypted",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": "arn:aws:s3:::bkt/*",
        "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
    }],
}


def test_policy_denying_unencrypted_put(engine):
    bucket = ssekit.Bucket(policy=DENY_UNENCRYPTED)
    assert bucket.policy == DENY_UNENCRYPTED
    with pytest.raises(ssekit.S3Error) as err:
        engine.plan_write("PutObject", "bkt", "obj", {}, bucket)
    assert (err.value.code, err.value.status) == ("AccessDenied", 403)
    plan = engine.plan_write("PutObject", "bkt", "obj", {SSE: "AES256"}, bucket)
    assert plan.mode == ssekit.Mode.SSE_S3
    with pytest.raises(ssekit.S3Error) as err:
        engine.authorize("PutObject", "bkt", "obj", {}, bucket)
    assert err.value.status == 403
    engine.authorize("GetObject", "bkt", "obj", {}, bucket)
    assert ssekit.policy_check(DENY_UNENCRYPTED, "PutObject", "bkt", "obj") == ssekit.Decision.DENY
    assert ssekit.policy_check(json.dumps(DENY_UNENCRYPTED), "PutObject", "bkt", "o", {SSE: "AES256"}) \
        == ssekit.Decision.NO_MATCH
    bucket.set_policy(None)
    assert bucket.policy is None
    engine.plan_write("PutObject", "bkt", "obj", {}, bucket)


def test_default_deny(keydir):
    with ssekit.Engine.local(keydir, default_allow=False) as e:
        with pytest.raises(ssekit.S3Error) as err:
            e.plan_write("PutObject", "b", "k", bucket=ssekit.Bucket(policy={
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                               "Resource": "arn:aws:s3:::b/*"}]}))
        assert err.value.status == 403


def test_policy_sees_the_principal_and_tls(engine):
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    bucket = ssekit.Bucket(policy=policy)
    with pytest.raises(ssekit.S3Error):
        engine.plan_write("PutObject", "b", "k", bucket=bucket)
    engine.plan_write("PutObject", "b", "k", bucket=bucket, secure=True,
                      principal="arn:aws:iam::000000000000:user/alice")


def test_malformed_policy_and_configuration():
    with pytest.raises(ssekit.MalformedPolicyError):
        ssekit.Bucket(policy="{not json")
    with pytest.raises(ssekit.MalformedPolicyError):
        ssekit.Bucket(policy={"Statement": "nope"})
    with pytest.raises(ssekit.MalformedConfigurationError):
        ssekit.Bucket({"algorithm": "AES192", "kms_key_id": None, "bucket_key_enabled": False})
    with pytest.raises(ssekit.MalformedConfigurationError):
        ssekit.Bucket("[]")
    with pytest.raises(TypeError):
        ssekit.Bucket(encryption=42)
    b = ssekit.Bucket({"algorithm": "aws:kms", "kms_key_id": None, "bucket_key_enabled": True})
    with pytest.raises(ssekit.MalformedConfigurationError):
        b.set_encryption({"algorithm": "nope"})
    assert b.encryption["algorithm"] == "aws:kms"  # unchanged
    with pytest.raises(ValueError):  # MalformedPolicyError is a ValueError too
        ssekit.policy_check("{", "PutObject", "b", "k")
