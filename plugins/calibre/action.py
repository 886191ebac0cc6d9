"""The calibre side: a toolbar button (and book-list context menu entry) with the plugin's
actions. Every call to stylesearch runs in calibre's job system, so the GUI never waits;
results come back on the GUI thread as marked books, in order, with a search showing them.

Each action takes an optional `done(error, message)`: the self-test passes one to follow the
outcome; without it an error is shown in a calibre error dialog.
"""

import os

from qt.core import QMenu, QTimer, QToolButton

from calibre.gui2 import Dispatcher, error_dialog
from calibre.gui2.actions import InterfaceAction
from calibre.gui2.threaded_jobs import ThreadedJob

from . import config, logic

SELFTEST_ENV = "STYLESEARCH_CALIBRE_SELFTEST"


class StyleSearchAction(InterfaceAction):
    name = "StyleSearch"
    action_spec = ("Style search", "search.png", "Find books drawn in a similar art style (stylesearch)", None)
    popup_type = QToolButton.ToolButtonPopupMode.InstantPopup
    action_type = "current"
    dont_add_to = frozenset(["context-menu-device"])

    def genesis(self):
        self.previous = {}  # library id -> (search text, virtual library, sort) before the plugin's results
        self.results_dialog = None
        menu = QMenu(self.gui)
        self.qaction.setMenu(menu)
        for key, text, icon, slot in (
            ("similar", "Find books with similar art style", "search.png", self.find_similar),
            ("morph", "Style morph between two books", "arrow-down.png", self.morph),
            ("index", "Index this library / update index", "plus.png", self.index_library),
            ("restore", "Restore previous search", "edit-undo.png", self.restore_search),
            ("settings", "Settings\u2026", "config.png", self.settings),
        ):
            self.create_menu_action(menu, f"stylesearch-{key}", text, icon=icon, triggered=slot)

    def initialization_complete(self):
        plan = os.environ.get(SELFTEST_ENV)
        if plan:
            from .selftest import SelfTest

            self.selftest = SelfTest(self, plan)
            QTimer.singleShot(0, self.selftest.start)

    # --- actions --------------------------------------------------------------------------
    def find_similar(self, *_, done=None):
        books = self._selected(1, "select one book to find books drawn in a similar art style", done)
        if not books:
            return
        book, (root, known) = books[0], self._library()
        k = config.prefs["results"]

        def work(client, progress, aborted):
            return logic.similar_results(client.similar(book.query_file(), k), root, known)

        def show(results):
            if not results:
                raise logic.StyleSearchFailed("stylesearch has nothing to compare with yet: run \u201cIndex this library\u201d first")
            marks = logic.labels([book.id] + [r.book_id for r in results], logic.SIMILAR_PREFIX)
            self._show(marks, logic.SIMILAR_PREFIX, results, f"Art style like \u201c{self._title(book.id)}\u201d")
            return f"{len(marks) - 1} of the {len(results)} works nearest in style are books of this library"

        self._job(f"stylesearch: books in the art style of {self._title(book.id)}", work, show, done)

    def morph(self, *_, done=None):
        books = self._selected(2, "select two books to morph from one art style to the other", done)
        if not books:
            return
        (a, b), (root, known) = books, self._library()

        def work(client, progress, aborted):
            return logic.morph_results(client.morph(a.query_file(), b.query_file()), root, known)

        def show(results):
            marks = logic.labels([r.book_id for r in results], logic.MORPH_PREFIX)
            self._show(marks, logic.MORPH_PREFIX, results, f"Style morph: {self._title(a.id)} \u2192 {self._title(b.id)}")
            return f"the morph path has {len(results)} steps, {len(marks)} of them books of this library"

        self._job(f"stylesearch: style morph {self._title(a.id)} \u2192 {self._title(b.id)}", work, show, done)

    def index_library(self, *_, done=None):
        with_comics = config.prefs["index_comics"]
        books = [self._book(i, with_comics) for i in self.gui.current_db.new_api.all_book_ids()]

        def work(client, progress, aborted):
            return client.index(logic.index_files(books, with_comics), progress, aborted)

        def show(summary):
            self.gui.status_bar.show_message(f"stylesearch: {summary}", 10000)
            return summary

        self._job("stylesearch: index this library's covers", work, show, done)

    def restore_search(self, *_, done=None):
        """Back to the search, virtual library and sort from before the plugin's results; its
        marks go, the user's own stay."""
        db = self.gui.current_db
        db.data.set_marked_ids(logic.merge_marks(db.data.marked_ids, {}))
        search, virtual_library, sort = self.previous.pop(db.library_id, ("", db.data.get_base_restriction_name(), []))
        self.gui.apply_virtual_library(virtual_library)
        self.gui.search.set_search_string(search)
        self.gui.library_view.apply_sort_history(sort)
        if done:
            done(None, search)

    def settings(self, *_):
        self.interface_action_base_plugin.do_user_config(self.gui)

    # --- helpers --------------------------------------------------------------------------
    def _selected(self, count, why, done):
        ids = self.gui.library_view.get_selected_ids()
        if len(ids) != count:
            return self._fail(why, done)
        books = [self._book(i) for i in ids]
        for book in books:
            if not book.query_file():
                return self._fail(f"\u201c{self._title(book.id)}\u201d has no cover or comic file to compare", done)
        return books

    def _library(self):
        """The library's folder and book ids, for matching results in a job."""
        db = self.gui.current_db
        return db.library_path, frozenset(db.new_api.all_book_ids())

    def _book(self, book_id, with_comics=True):
        db = self.gui.current_db
        api = db.new_api
        folder = os.path.join(db.library_path, *api.field_for("path", book_id).split("/"))
        cover = os.path.join(folder, "cover.jpg") if api.field_for("cover", book_id) else None
        formats = api.formats(book_id, verify_formats=False) if with_comics else ()
        comics = tuple(p for f in logic.COMIC_FORMATS if f in formats and (p := api.format_abspath(book_id, f)))
        return logic.Book(book_id, cover, comics)

    def _title(self, book_id):
        return self.gui.current_db.new_api.field_for("title", book_id)

    def _job(self, description, work, show, done):
        """Run `work(client, progress, aborted)` as a calibre job; `show(result)` then runs on
        the GUI thread and returns the line for `done`."""
        client = config.client()

        def run(abort, log, notifications):
            return work(client, lambda fraction, text: notifications.put((fraction, text)), abort.is_set)

        def finished(job):
            if job.failed:
                failure = job.exception
                reason = str(failure) if isinstance(failure, logic.StyleSearchFailed) else f"unexpected error: {failure!r}"
                return self._fail(reason, done, job.details)
            try:
                message = show(job.result)
            except logic.StyleSearchFailed as exc:
                return self._fail(str(exc), done)
            if done:
                done(None, message)

        self.gui.job_manager.run_threaded_job(ThreadedJob("stylesearch", description, run, (), {}, Dispatcher(finished)))
        self.gui.status_bar.show_message(description + "\u2026", 3000)

    def _fail(self, reason, done, details=""):
        if done:
            done(reason, "")
        else:
            error_dialog(self.gui, "stylesearch", reason, det_msg=details, show=True)

    def _show(self, marks, prefix, results, title):
        """Mark the result books, search for them over the whole library, in result order."""
        db = self.gui.current_db
        searches = (logic.search_for(logic.SIMILAR_PREFIX), logic.search_for(logic.MORPH_PREFIX))
        if self.gui.search.current_text not in searches:  # keep the user's own state, not an earlier result's
            self.previous[db.library_id] = (self.gui.search.current_text, db.data.get_base_restriction_name(),
                                            self.gui.library_view.get_state()["sort_history"])
        db.data.set_marked_ids(logic.merge_marks(db.data.marked_ids, marks))
        self.gui.apply_virtual_library("")
        self.gui.search.set_search_string(logic.search_for(prefix))
        self.gui.library_view.sort_by_named_field("marked", True)
        if config.prefs["show_dialog"]:
            from .results import ResultsDialog

            if self.results_dialog is not None:
                self.results_dialog.close()
            self.results_dialog = ResultsDialog(self.gui, title, results, self._cover_of)
            self.results_dialog.show()

    def _cover_of(self, book_id):
        return self._book(book_id, with_comics=False).cover
