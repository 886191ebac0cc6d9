"""A scripted run of the plugin inside a real calibre GUI, for the integration test.

Set STYLESEARCH_CALIBRE_SELFTEST to a JSON plan, `{"out": FILE, "steps": [[NAME, ARG...]]}`,
with steps `["search", TEXT]`, `["sort", FIELD]` (ascending), `["settings", {NAME: VALUE}]` (through
the settings page; its message is the auto-detected executable), `["index"]`, `["similar", BOOK_ID]`, `["morph", A, B]` and
`["restore"]`. Each step selects its books and triggers the same method the menu does; after
it the outcome, the marks, the search and the book list's order are written to FILE, and
calibre quits at the end.
"""

import json

from qt.core import QTimer


class SelfTest:
    def __init__(self, action, plan_file):
        self.action, self.gui = action, action.gui
        with open(plan_file) as fh:
            plan = json.load(fh)
        self.out, self.steps = plan["out"], list(plan["steps"])
        self.record = {"library_id": self.gui.current_db.library_id, "steps": []}

    def start(self):
        if not self.steps:
            return self.finish()
        name, *args = self.steps.pop(0)
        if name in ("search", "sort"):  # what a user did before asking for results
            if name == "search":
                self.gui.search.set_search_string(args[0])
            else:
                self.gui.library_view.sort_by_named_field(args[0], True)
            return self.done(name, args)(None, "")
        if name == "settings":
            return self.done(name, args)(None, self.settings(args[0]))
        if args:
            self.gui.library_view.select_rows(args)
        run = {"index": self.action.index_library, "similar": self.action.find_similar,
               "morph": self.action.morph, "restore": self.action.restore_search}[name]
        run(done=self.done(name, args))

    def settings(self, values):
        base = self.action.interface_action_base_plugin
        page = base.config_widget()
        for key, value in values.items():
            getattr(page, key).setValue(value)
        base.save_settings(page)
        return page.executable.placeholderText()

    def done(self, name, args):
        def record(error, message):
            view = self.gui.library_view.model()
            self.record["steps"].append({
                "step": [name, *args], "error": error, "message": message,
                "marked": {str(k): v for k, v in self.gui.current_db.data.marked_ids.items()},
                "search": self.gui.search.current_text,
                "view": [view.id(row) for row in range(view.rowCount(None))],
                "dialog": self.action.results_dialog.list.count() if self.action.results_dialog else None,
            })
            QTimer.singleShot(0, self.start)

        return record

    def finish(self):
        with open(self.out, "w") as fh:
            json.dump(self.record, fh, indent=1)
        self.gui.quit(confirm_quit=False)
