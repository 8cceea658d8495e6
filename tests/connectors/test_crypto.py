"""The vendors' crypto against the test vectors their documentation publishes."""

from __future__ import annotations

import pytest

from connectors.base import SignatureError
from connectors.crypto import (
    BizMsgCrypt,
    feishu_decrypt,
    feishu_encrypt,
    feishu_signature,
    sha1_signature,
)

# WeCom: developer.work.weixin.qq.com/document/path/90968 (加解密方案说明) and the
# official WXBizMsgCrypt samples: corpid wx5823bf96d3bd56c7, token QDG6eK.
WECOM_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
WECOM_ECHO = ("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO"
              "+FZXvnaqQ==")
WECOM_MSG = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qczc"
    "dCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLj"
    "vd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMn"
    "vw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k"
    "22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2Yoy"
    "yH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)

# DingTalk: the official open-dingtalk/DingTalk-Callback-Crypto sample
# (DingCallbackCrypto3.py __main__): token "mryue", owner key ding6ccabc44d2c8d38b.
DING_KEY = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
DING_ENC = ("0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvm"
            "BKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3")


def test_wecom_verify_url_vector() -> None:
    c = BizMsgCrypt("wecom", "QDG6eK", WECOM_KEY, "wx5823bf96d3bd56c7")
    c.verify("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", WECOM_ECHO)
    assert c.decrypt(WECOM_ECHO) == "1616140317555161061"


def test_wecom_message_vector() -> None:
    c = BizMsgCrypt("wecom", "QDG6eK", WECOM_KEY, "wx5823bf96d3bd56c7")
    c.verify("477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", WECOM_MSG)
    xml = c.decrypt(WECOM_MSG)
    assert "<Content><![CDATA[hello]]></Content>" in xml
    assert "<MsgId>4561255354251345929</MsgId>" in xml


def test_wecom_vector_refused_for_another_corp_or_signature() -> None:
    other = BizMsgCrypt("wecom", "QDG6eK", WECOM_KEY, "ww0000000000000000")
    with pytest.raises(SignatureError, match="receive id"):
        other.decrypt(WECOM_MSG)
    with pytest.raises(SignatureError, match="signature"):
        other.verify("477715d11cdb4164915debcba66cb864d751f3e6", "1409659814", "1372623149",
                     WECOM_MSG)


def test_dingtalk_official_sample_vector() -> None:
    c = BizMsgCrypt("dingtalk", "mryue", DING_KEY, "ding6ccabc44d2c8d38b")
    c.verify("03044561471240d4a14bb09372dfcfd4fd0e40cb", "1608001896814", "WL4PK6yA", DING_ENC)
    assert c.decrypt(DING_ENC) == '{"EventType":"check_url"}'


def test_biz_crypt_round_trip_pads_to_32_bytes() -> None:
    c = BizMsgCrypt("dingtalk", "t", DING_KEY, "suite")
    for msg in ("", "success", "x" * 12, "钉钉" * 40):
        enc = c.encrypt(msg)
        assert len(__import__("base64").b64decode(enc)) % 32 == 0
        assert c.decrypt(enc) == msg


def test_feishu_documented_vector() -> None:
    # open.feishu.cn "Encrypt Key 加密配置案例": key "test key" decrypts to "hello world".
    assert feishu_decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == "hello world"
    assert feishu_decrypt("k", feishu_encrypt("k", '{"a":"飞书"}')) == '{"a":"飞书"}'
    with pytest.raises(SignatureError):
        feishu_decrypt("wrong key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=")


def test_feishu_signature_is_order_sensitive_sha256() -> None:
    sig = feishu_signature("1700000000", "nonce", "key", b'{"encrypt":"x"}')
    import hashlib
    assert sig == hashlib.sha256(b'1700000000noncekey{"encrypt":"x"}').hexdigest()
    assert sha1_signature("b", "a") == hashlib.sha1(b"ab").hexdigest()
