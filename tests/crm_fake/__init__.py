"""Local fakes of external CRMs, served over HTTP for the adapter and workflow tests."""
