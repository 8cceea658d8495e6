"""The console's pages through Flask's test client, on the demo organisation.

Each test drives what a person does (sign in, open a page, press a button) and checks
what the engine then holds, not only what the page says.
"""

from __future__ import annotations

import re
from datetime import date

from flask import Flask
from sqlalchemy import select

from yinfin_flow.db.engine import Database
from yinfin_flow.db.models.engine import ApprovalRequest, ApprovalTask
from yinfin_flow.engine import queries
from yinfin_flow.security import tokens

from .conftest import console_app, csrf_of, english, text


def pending(db: Database, user: str) -> list[dict]:
    with db.unit_of_work(readonly=True) as s:
        return queries.inbox(s, user)


def task_status(db: Database, task_id: int) -> str:
    with db.unit_of_work(readonly=True) as s:
        return s.get(ApprovalTask, task_id).status


def test_anonymous_is_sent_to_sign_in_and_dev_lists_the_directory(app: Flask):
    c = english(app)
    resp = c.get("/inbox")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/sign-in?next=/inbox")
    page = c.get("/sign-in")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'data-testid="as-amy"' in body and 'data-testid="as-fiona"' in body
    assert "finance" in text(page)  # the people's directory roles are shown


def test_sign_in_as_gives_directory_roles_and_a_safe_session_cookie(app: Flask, person):
    c = english(app)
    https = "https://console.example"
    page = c.get("/sign-in", base_url=https).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = c.post("/sign-in/as", data={"user": "fiona", "csrf_token": token, "next": "//evil.example/x"},
                  base_url=https, headers={"Referer": f"{https}/sign-in"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/inbox"  # never another host
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    assert "Expires=" in cookie
    plain = english(app)  # over http in development: not Secure
    resp = plain.post("/sign-in/as", data={"user": "amy", "csrf_token": csrf_of(plain)})
    assert resp.status_code == 302 and "Secure" not in resp.headers["Set-Cookie"]
    assert "finance" not in text(plain.get("/inbox"))  # amy is no finance person
    fiona = person("fiona")
    assert 'data-testid="me">fiona<' in fiona.get("/inbox").get_data(as_text=True)


def test_sign_in_with_a_token_and_sign_out(app: Flask, demo_db: Database):
    with demo_db.unit_of_work() as s:
        issued = tokens.create_token(s, "amy", name="console", created_by="admin")
    c = english(app)
    bad = c.post("/sign-in", data={"token": "yf_nope", "csrf_token": csrf_of(c)})
    assert bad.status_code == 401 and "Sign-in refused" in text(bad)
    ok = c.post("/sign-in", data={"token": issued.token, "csrf_token": csrf_of(c), "next": "/requests"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/requests"
    assert 'data-testid="me">amy<' in c.get("/requests").get_data(as_text=True)
    out = c.post("/sign-out", data={"csrf_token": csrf_of(c, "/requests")})
    assert out.status_code == 302
    assert c.get("/inbox").status_code == 302  # signed out


def test_production_has_no_sign_in_as(demo_db: Database):
    app = console_app(demo_db, env="production", secret_key="s" * 32)
    c = english(app)
    page = c.get("/sign-in")
    assert page.status_code == 200 and 'data-testid="as-amy"' not in page.get_data(as_text=True)
    https = "https://console.example"
    page = c.get("/sign-in", base_url=https).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = c.post("/sign-in/as", data={"user": "amy", "csrf_token": token},
                  base_url=https, headers={"Referer": f"{https}/sign-in"})
    assert resp.status_code == 403
    assert c.get("/inbox", base_url="https://console.example").status_code == 302


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app: Flask, demo_db, person):
    wang = person("wang.app")
    task = pending(demo_db, "wang.app")[0]
    resp = wang.client.post(f"/tasks/{task['id']}/approve", data={"comment": "ok"})
    assert resp.status_code == 400 and 'data-code="csrf_failed"' in resp.get_data(as_text=True)
    forged = wang.client.post(f"/tasks/{task['id']}/approve", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    hx = wang.client.post(f"/tasks/{task['id']}/approve", headers={"HX-Request": "true"})
    assert hx.status_code == 400
    assert task_status(demo_db, task["id"]) == "pending"
    # with the token (as the page's forms and htmx's header send it) it goes through
    ok = wang.client.post(f"/tasks/{task['id']}/approve", headers={"X-CSRFToken": wang.csrf})
    assert ok.status_code == 302
    assert task_status(demo_db, task["id"]) == "approved"


def test_inbox_rows_carry_step_countersign_and_budget_impact(person, demo_db):
    wang = person("wang.app")
    page = wang.get("/inbox")
    body = text(page)
    assert page.status_code == 200
    task = pending(demo_db, "wang.app")[0]
    assert f'data-task="{task["id"]}"' in page.get_data(as_text=True)
    assert "Line manager" in body and "1" in body
    assert "available after approval" in body and "RD-APP/TRAVEL" in body and "RD/TRAVEL" in body
    assert 'class="usage level-' in page.get_data(as_text=True)


def test_inbox_filters_sort_and_refuse_bad_input(person):
    fiona = person("fiona")
    all_rows = re.findall(r'data-task="(\d+)"', fiona.get("/inbox").get_data(as_text=True))
    assert all_rows
    none = fiona.get("/inbox?min_amount=100000000")
    assert re.findall(r'data-task="(\d+)"', none.get_data(as_text=True)) == []
    only_expense = fiona.get("/inbox?workflow=expense").get_data(as_text=True)
    assert "expense" in only_expense and "procurement ·" not in only_expense
    asc = re.findall(r'class="amount">([^<]+)<', fiona.get("/inbox?sort=amount_asc").get_data(as_text=True))
    assert asc
    bad = fiona.get("/inbox?min_amount=lots")
    assert bad.status_code == 422 and "min_amount" in text(bad)
    assert fiona.get("/inbox?sort=sideways").status_code == 422


def test_a_strangers_task_and_request_are_not_found(person, demo_db):
    task = pending(demo_db, "wang.app")[0]
    bob = person("bob")
    assert bob.get(f"/tasks/{task['id']}").status_code == 404
    assert bob.get(f"/requests/{task['request_id']}").status_code == 404
    resp = bob.post(f"/tasks/{task['id']}/approve")
    assert resp.status_code == 404 and 'data-code="not_found"' in resp.get_data(as_text=True)
    assert task_status(demo_db, task["id"]) == "pending"


def test_task_page_actions_and_errors_as_the_api_words_them(person, demo_db):
    wang = person("wang.app")
    task = pending(demo_db, "wang.app")[0]
    page = wang.get(f"/tasks/{task['id']}")
    body = text(page)
    assert page.status_code == 200 and "Budget impact" in body and "Line manager" in body
    assert 'data-testid="approve"' in page.get_data(as_text=True)
    no_reason = wang.post(f"/tasks/{task['id']}/reject", {"comment": ""})
    assert no_reason.status_code == 422 and "comment" in text(no_reason)
    stale = wang.post(f"/tasks/{task['id']}/approve", {"version": "999"})
    assert stale.status_code == 409 and 'data-code="stale_request"' in stale.get_data(as_text=True)
    done = wang.post(f"/tasks/{task['id']}/approve", {"comment": "fine"})
    assert done.status_code == 302
    again = wang.post(f"/tasks/{task['id']}/approve", headers={"HX-Request": "true"})
    assert again.status_code == 409 and again.headers["HX-Retarget"] == "#flash"
    assert "task_closed" in again.get_data(as_text=True)


def test_transfer_add_approver_and_comment_from_the_task_page(person, demo_db):
    wang = person("wang.app")
    task = pending(demo_db, "wang.app")[0]
    assert wang.post(f"/tasks/{task['id']}/comment", {"text": "looking"}).status_code == 302
    added = wang.post(f"/tasks/{task['id']}/add-approver", {"users": "zhao.web", "position": "before"})
    assert added.status_code == 302, text(added)
    assert any(t["request_id"] == task["request_id"] for t in pending(demo_db, "zhao.web"))
    with demo_db.unit_of_work(readonly=True) as s:
        actions = [h["action"] for h in queries.get_request(s, task["request_id"])["history"]]
    assert "comment" in actions


def test_batch_approval_decides_each_task_on_its_own(person, demo_db):
    fiona = person("fiona")
    mine = [t["id"] for t in pending(demo_db, "fiona")]
    stranger = pending(demo_db, "wang.app")[0]["id"]
    resp = fiona.post("/inbox/batch", {"task": [*mine, stranger], "action": "approve"},
                      headers={"HX-Request": "true"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    for t in mine:
        assert re.search(rf'class="ok" data-task="{t}"', html)
        assert task_status(demo_db, t) in ("approved",)
    assert re.search(rf'class="refused" data-task="{stranger}"', html) and "not_found" in html
    assert task_status(demo_db, stranger) == "pending"


def test_batch_reject_needs_one_comment(person, demo_db):
    fiona = person("fiona")
    mine = [t["id"] for t in pending(demo_db, "fiona")]
    resp = fiona.post("/inbox/batch", {"task": mine, "action": "reject"})
    assert resp.status_code == 422 and "comment" in text(resp)
    assert all(task_status(demo_db, t) == "pending" for t in mine)


def test_request_page_shows_the_closed_loop_with_the_voucher(person, demo_db):
    with demo_db.unit_of_work(readonly=True) as s:
        paid = s.scalar(select(ApprovalRequest).where(ApprovalRequest.workflow == "expense",
                                                      ApprovalRequest.state == "paid"))
        assert paid is not None
        paid_id = paid.id
    amy = person("amy")
    page = amy.get(f"/requests/{paid_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-testid="voucher"' in html
    assert re.search(r'class="voucher-no">[^<]+-\d+<', html) or 'class="voucher-no">' in html
    body = text(page)
    assert "Budget movements" in body and "actual" in body and "2241" in body
    printable = amy.get(f"/requests/{paid_id}/print")
    assert printable.status_code == 200 and "Expense claim" in text(printable)
    assert "wang.app" in text(printable)  # the approvers' names


def test_new_expense_search_preview_submit_and_over_budget(person, demo_db):
    amy = person("amy")
    found = amy.get("/budget-lines?q=travel")
    line = re.search(r'data-pick="(\d+)"', found.get_data(as_text=True)).group(1)
    assert "RD-APP" in text(found) and "SALES" not in text(found)  # only what amy may charge
    today = date.today().isoformat()
    preview = amy.post("/budget-lines/preview", {"line_id": line, "amount": "100.00", "budget_date": today})
    assert preview.status_code == 200 and 'data-testid="preview"' in preview.get_data(as_text=True)
    over = amy.post("/new/expense", {"title": "Too much", "line_id": line, "amount": "99999999.00",
                                      "budget_date": today}, headers={"HX-Request": "true"})
    assert over.status_code == 409 and "E1_over_budget" in over.get_data(as_text=True)
    made = amy.post("/new/expense", {"title": "Taxi", "line_id": line, "amount": "88.00",
                                      "budget_date": today, "memo": "airport"})
    assert made.status_code == 302
    request_id = int(made.headers["Location"].rsplit("/", 1)[1])
    with demo_db.unit_of_work(readonly=True) as s:
        req = queries.get_request(s, request_id)
    assert req["state"] == "approval" and req["requester"] == "amy" and req["amount"] == "88.0000"
    no_line = amy.post("/new/expense", {"title": "x", "amount": "5.00"})
    assert no_line.status_code == 422 and "line_id" in text(no_line)


def test_send_back_then_resubmit_with_a_changed_amount(person, demo_db):
    wang = person("wang.app")
    task = pending(demo_db, "wang.app")[0]
    assert wang.post(f"/tasks/{task['id']}/send-back", {"comment": "split the hotel"}).status_code == 302
    amy = person("amy")
    page = amy.get(f"/requests/{task['request_id']}")
    assert 'data-testid="resubmit"' in page.get_data(as_text=True)
    resp = amy.post(f"/requests/{task['request_id']}/resubmit", {"amount": "500.00", "comment": "split"})
    assert resp.status_code == 302, text(resp)
    with demo_db.unit_of_work(readonly=True) as s:
        req = queries.get_request(s, task["request_id"])
    assert req["state"] == "approval" and req["form"]["lines"][0]["amount"] == "500.0000"
    again = pending(demo_db, "wang.app")[0]
    shown = wang.get(f"/tasks/{again['id']}")
    assert 'data-testid="changes"' in shown.get_data(as_text=True)  # the approver sees the edit


def test_withdraw_urge_and_comment_on_my_request(person, demo_db):
    task = pending(demo_db, "wang.app")[0]
    amy = person("amy")
    rid = task["request_id"]
    assert amy.post(f"/requests/{rid}/urge").status_code == 302
    assert amy.post(f"/requests/{rid}/comment", {"text": "please"}).status_code == 302
    assert amy.post(f"/requests/{rid}/withdraw", {"comment": "not needed"}).status_code == 302
    with demo_db.unit_of_work(readonly=True) as s:
        assert queries.get_request(s, rid)["state"] == "withdrawn"
    wrong = person("bob").post(f"/requests/{rid}/withdraw")
    assert wrong.status_code == 404


def test_my_requests_lists_only_mine_with_a_state_filter(person):
    amy = person("amy")
    page = amy.get("/requests?state=paid")
    assert page.status_code == 200 and "Paid" in text(page)
    assert amy.get("/requests?state=nonsense").status_code == 422
    bob_page = person("bob").get("/requests").get_data(as_text=True)
    assert "Trip to Shenzhen" not in bob_page  # amy's


def test_inside_a_host_the_hosts_identity_decides_and_the_console_sits_under_its_prefix(
        demo_db: Database):
    from flask import Flask as Host

    from yinfin_flow import YinFinFlow
    from yinfin_flow.api.identity import Identity
    from yinfin_flow.config import Settings

    host = Host("host")
    host.secret_key = "host-secret"

    @host.get("/")
    def home() -> str:
        return "host home"

    def sso(req):  # noqa: ANN001, ANN202 - the host's login
        return Identity("wang.app") if req.cookies.get("sid") == "ok" else None

    YinFinFlow(host, settings=Settings(database_url=demo_db.url), url_prefix="/finance",
               identity_provider=sso)
    c = english(host)
    assert c.get("/").data == b"host home"
    assert c.get("/finance/inbox").status_code == 302  # nobody signed in at the host
    refused = c.get("/finance/sign-in")
    assert refused.status_code == 401 and 'data-testid="as-amy"' not in refused.get_data(as_text=True)
    c.set_cookie("sid", "ok")
    page = c.get("/finance/inbox")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-testid="me">wang.app<' in html
    assert "/finance/static/console/" in html and "Sign out" not in html
    assert c.get("/finance/static/console/htmx-2.0.11.min.js").status_code == 200
    assert c.get("/finance/api/v1/tasks", headers={"Cookie": "sid=ok"}).status_code == 200


def test_a_request_from_an_oa_form_names_its_connector_and_instance(person, demo_db):
    with demo_db.unit_of_work() as s:
        from yinfin_flow.engine import service

        task = pending(demo_db, "wang.app")[0]
        form = queries.get_request(s, task["request_id"])["form"]
        req = service.submit(s, "expense", requester="amy", company="ACME", title="From DingTalk",
                             form={"lines": form["lines"]}, key="oa:dingtalk:PROC-0042")
        rid = req.id
    page = person("amy").get(f"/requests/{rid}")
    assert "OA event PROC-0042 from dingtalk" in text(page)


def test_receipts_upload_download_and_one_claim_per_invoice(person, demo_db):
    import io

    from yinfin_flow.attachments import samples

    task = pending(demo_db, "wang.app")[0]
    rid = task["request_id"]
    amy = person("amy")
    png = samples.receipt_png(seed=7)
    resp = amy.post(f"/requests/{rid}/attachments",
                    {"file": (io.BytesIO(png), "taxi.png", "image/png"), "line_ref": "1",
                     "invoice_code": "044031900111", "invoice_number": "77770001"},
                    content_type="multipart/form-data")
    assert resp.status_code == 302, text(resp)
    page = amy.get(f"/requests/{rid}").get_data(as_text=True)
    link = re.search(r'href="(/attachments/(\d+)/content)" download>taxi.png<', page)
    assert link, "the receipt is listed with a download link"
    # the approver sees and downloads it from the task page, always as a download
    wang = person("wang.app")
    assert link.group(1) in wang.get(f"/tasks/{task['id']}").get_data(as_text=True)
    got = wang.get(link.group(1))
    assert got.status_code == 200 and got.data == png
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert person("bob").get(link.group(1)).status_code == 404  # a stranger
    # the same invoice on another request is refused, naming the request that holds it
    other = re.findall(r'href="/requests/(\d+)"', amy.get("/requests?state=approved").get_data(as_text=True))[0]
    dup = amy.post(f"/requests/{other}/attachments",
                   {"file": (io.BytesIO(png), "again.png", "image/png"),
                    "invoice_code": "044031900111", "invoice_number": "77770001"},
                   content_type="multipart/form-data")
    assert dup.status_code == 409 and 'data-code="duplicate_invoice"' in dup.get_data(as_text=True)
    assert str(rid) in text(dup)
    fake = amy.post(f"/requests/{rid}/attachments", {"file": (io.BytesIO(b"<html>"), "x.pdf", "application/pdf")},
                    content_type="multipart/form-data")
    assert fake.status_code in (415, 422) and "attachment" in fake.get_data(as_text=True).lower()


def test_a_new_expense_with_its_receipt_is_made_whole_or_not_at_all(person, demo_db):
    import io

    from yinfin_flow.attachments import samples, service

    amy = person("amy")
    line = re.search(r'data-pick="(\d+)"', amy.get("/budget-lines?q=travel").get_data(as_text=True)).group(1)
    base = {"title": "Dinner", "line_id": line, "amount": "120.00", "budget_date": date.today().isoformat()}
    pdf = samples.receipt_pdf(["Dinner 120.00 CNY"])
    made = amy.post("/new/expense", {**base, "file": (io.BytesIO(pdf), "dinner.pdf", "application/pdf"),
                                     "invoice_code": "044031900111", "invoice_number": "88880001"},
                    content_type="multipart/form-data")
    assert made.status_code == 302, text(made)
    rid = int(made.headers["Location"].rsplit("/", 1)[1])
    with demo_db.unit_of_work(readonly=True) as s:
        assert [a["filename"] for a in service.list_for_request(s, rid, "amy")] == ["dinner.pdf"]
        before = s.query(ApprovalRequest).count()
    again = amy.post("/new/expense", {**base, "file": (io.BytesIO(pdf), "dinner.pdf", "application/pdf"),
                                      "invoice_code": "044031900111", "invoice_number": "88880001"},
                     content_type="multipart/form-data")
    assert again.status_code == 409 and "duplicate_invoice" in again.get_data(as_text=True)
    with demo_db.unit_of_work(readonly=True) as s:
        assert s.query(ApprovalRequest).count() == before  # no request without its receipt


def test_console_posts_are_in_the_audit_chain_refused_ones_too(person, demo_db):
    from yinfin_flow.db.models.security import AuditLog

    wang = person("wang.app")
    task = pending(demo_db, "wang.app")[0]
    wang.post(f"/tasks/{task['id']}/reject", {"comment": ""})
    wang.post(f"/tasks/{task['id']}/approve", {"comment": "ok"})
    with demo_db.unit_of_work(readonly=True) as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.endpoint == "console.task_action")
                         .order_by(AuditLog.id)).all()
    assert [(r.actor, r.status) for r in rows] == [("wang.app", 422), ("wang.app", 302)]
    assert rows[0].detail == "validation_error"
