from setuptools import find_packages, setup

setup(
    name="tap-klaviyo",
    version="2.0.0",
    description="Singer tap for Klaviyo: the twelve classic tables and opt-in streams from Klaviyo's current API",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["tap_klaviyo", "tap_klaviyo.*"]),
    package_data={"tap_klaviyo": ["schemas/*.json", "spec_rules.json"]},
    install_requires=[
        "singer-python==6.8.0",
        "requests>=2.32,<3",
        "backoff==2.2.1",
        "python-dateutil>=2.8,<3",
        "msgspec>=0.19,<1",
    ],
    extras_require={"test": ["pytest>=8", "hypothesis>=6", "orjson>=3.10,<4"]},
    entry_points={"console_scripts": ["tap-klaviyo=tap_klaviyo:main"]},
)
