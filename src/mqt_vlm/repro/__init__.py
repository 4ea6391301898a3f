"""The CPU reproduction of the paper's central claim on synthetic scenes (`make reproduce`)."""
