# The course's pytest plugin: --target, unit markers, and the student /
# reference / rng fixtures. See grader/pytest_plugin.py.
pytest_plugins = ["grader.pytest_plugin"]
