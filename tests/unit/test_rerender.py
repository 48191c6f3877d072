"""A notice's email built again from today's templates, or the reason it cannot be."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support.memory_engine import rig, shipped_rule, text_of, tna_key, tracking

from notifier.core.models import message_id_for
from notifier.engine.rerender import CannotRerender, rerender


def test_a_sent_notice_is_built_again_with_its_own_message_id() -> None:
    r = rig()
    r.engine.ingest([tracking(1)])
    r.deliver()
    (sent,) = r.sent
    again = rerender(r.engine, r.notice(tna_key(1)))
    assert (
        again["Message-ID"]
        == sent["Message-ID"]
        == message_id_for(tna_key(1), r.engine.config.branding.message_id_domain)
    )
    assert text_of(again) == text_of(sent)


def test_a_notice_whose_rule_is_gone_says_so() -> None:
    r = rig()
    r.engine.ingest([tracking(1)])
    others = rig(rules=[shipped_rule("all_fulfillments")], store=r.store)
    with pytest.raises(CannotRerender, match="rule 'tracking_number_assigned' is no longer"):
        rerender(others.engine, r.notice(tna_key(1)))


def test_a_notice_without_an_address_says_so() -> None:
    r = rig()
    r.engine.ingest([tracking(1)])
    with pytest.raises(CannotRerender, match="no recipient address"):
        rerender(r.engine, replace(r.notice(tna_key(1)), recipient=None))
