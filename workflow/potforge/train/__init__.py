"""The NequIP committee stage: configs, member training, deployment, scoring."""
