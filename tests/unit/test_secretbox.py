from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from summon.secretbox import SecretBox, SecretUnreadable, load_or_create_keys


def test_round_trip_and_ciphertext_differs() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    token = box.encrypt("whsec_abc")
    assert "whsec_abc" not in token and box.decrypt(token) == "whsec_abc"
    assert box.encrypt("x") != box.encrypt("x")  # random IV


def test_rotation_first_key_encrypts_all_decrypt() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = SecretBox([old]).encrypt("secret")
    rotated = SecretBox([new, old])
    assert rotated.decrypt(token) == "secret"
    assert SecretBox([new]).decrypt(rotated.encrypt("s2")) == "s2"
    with pytest.raises(SecretUnreadable):
        SecretBox([new]).decrypt(token)
    with pytest.raises(SecretUnreadable):
        SecretBox([new]).decrypt("not a token")


def test_passphrase_keys() -> None:
    box = SecretBox(["a passphrase that is long enough to use!"])
    assert box.decrypt(box.encrypt("v")) == "v"
    with pytest.raises(ValueError):
        SecretBox(["short"])


def test_generated_key_is_private_and_stable(tmp_path: Path) -> None:
    keys = load_or_create_keys(None, tmp_path / "data")
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_keys(None, tmp_path / "data") == keys
    assert load_or_create_keys("k1, k2", tmp_path) == ["k1", "k2"]
