"""Settings trees (YAML, validated strictly): a camera's pipeline (`pipeline.py`) and a live
site (`site.py`). The config base they are built on is `detector.protocol.config`."""

from detector.config.pipeline import (
    ActsConfig,
    CameraConfig,
    DetectorConfig,
    MotionConfig,
    SceneConfig,
    Settings,
    SourceConfig,
    TrackerConfig,
    ZoneConfig,
    load_settings,
)
from detector.config.site import (
    DeliveryConfig,
    MetricsConfig,
    MqttConfig,
    OutboxConfig,
    PrivacyConfig,
    RtspConfig,
    SiteCamera,
    SiteConfig,
    SupervisorConfig,
    load_site,
    validate_site,
)
from detector.protocol.config import Section, load_config, load_yaml, validate

__all__ = [
    "ActsConfig",
    "CameraConfig",
    "DeliveryConfig",
    "DetectorConfig",
    "MetricsConfig",
    "MotionConfig",
    "MqttConfig",
    "OutboxConfig",
    "PrivacyConfig",
    "RtspConfig",
    "SceneConfig",
    "Section",
    "Settings",
    "SiteCamera",
    "SiteConfig",
    "SourceConfig",
    "SupervisorConfig",
    "TrackerConfig",
    "ZoneConfig",
    "load_config",
    "load_settings",
    "load_site",
    "load_yaml",
    "validate",
    "validate_site",
]
