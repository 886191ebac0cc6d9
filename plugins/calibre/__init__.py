"""stylesearch for calibre: find books drawn in a similar art style.

calibre loads this file to learn about the plugin (also from calibre-customize, without a
GUI), so it imports nothing but the plugin base class; the action lives in `action.py`.
"""

from calibre.customize import InterfaceActionBase


class StyleSearchPlugin(InterfaceActionBase):
    name = "StyleSearch"
    description = "Find books drawn in a similar art style, morph between two books' styles (needs stylesearch)"
    supported_platforms = ["linux", "osx"]  # the daemon listens on a Unix socket
    author = "stylesearch"
    version = (0, 1, 0)
    minimum_calibre_version = (6, 0, 0)
    actual_plugin = "calibre_plugins.stylesearch.action:StyleSearchAction"

    def is_customizable(self):
        return True

    def config_widget(self):
        from calibre_plugins.stylesearch.config import ConfigWidget

        return ConfigWidget()

    def save_settings(self, config_widget):
        config_widget.save_settings()
