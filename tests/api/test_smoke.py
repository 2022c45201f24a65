async def test_line_defaults(admin):
    response = await admin.post("/v1/lines", json={})
    assert response.status_code == 201, response.text
    line = response.json()
    assert line["name"] == f"Line {line['id']}"
    assert line["queue"]["handover_after"] == 60
