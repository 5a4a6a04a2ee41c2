# The test harness's IPython profile: kernels keep no history (many run at once, and nothing
# under tests/ should change when notebooks run). The start-up file does the harness's work.
c = get_config()  # noqa: F821
c.HistoryManager.enabled = False
