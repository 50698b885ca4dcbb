;;; charcode-test.el --- drive eglot or lsp-mode in `emacs --batch' against charcode  -*- lexical-binding: t -*-

;; Run by tests/server/test_emacs.py:
;;
;;   emacs --batch -q -l charcode-test.el -f charcode-test-run
;;
;; (-q, not -Q: Debian's site files are what let `package-initialize' find its elpa-* packages.)
;;
;; $CHARCODE_EMACS_CONFIG names a JSON file: {client: "eglot" | "lsp-mode", config: the
;; README's configuration for that client (an .el file, loaded as a user's init file would
;; be), root, file, seed, timeout, output, steps}.  The steps are what a user does: visit a Python
;; file of the workspace (its major mode starts the client), type, complete with the
;; client's own `completion-at-point' function and accept the best candidate, run the
;; README's hallucinate command, type again and complete, and edit a line with an emoji; after
;; that it asks the server for its copy of the document.  Everything the test checks
;; is written to `output' as JSON; an error stops the run and is written there too.
;; With steps "settings" it only checks that eglot keeps settings given as initializationOptions.
;; Waits poll with `accept-process-output' up to a deadline: no fixed sleeps.

(require 'cl-lib)
(require 'json)
(require 'subr-x)

(declare-function charcode-hallucinate "README.md's eglot block")
(declare-function charcode-lsp-hallucinate "README.md's lsp-mode block")

(defvar charcode-test-config nil "The parsed JSON configuration (an alist).")
(defvar charcode-test-out nil "What the run reports, an alist, newest first.")
(defvar charcode-test-deadline nil "`float-time' past which every wait fails.")

(defun charcode-test-get (key)
  (alist-get key charcode-test-config))

(defun charcode-test-put (key value)
  (push (cons key value) charcode-test-out))

(defun charcode-test-wait (what pred)
  "Process output until PRED returns non-nil (its value), or fail naming WHAT."
  (let (value)
    (while (not (setq value (funcall pred)))
      (when (> (float-time) charcode-test-deadline)
        (error "Timed out waiting for %s" what))
      (accept-process-output nil 0.05))
    value))

;;; completion, as a completion UI does it

(defvar charcode-test-candidates nil "The last completion: candidates in display order.")

(defun charcode-test-choose-first (start end collection predicate)
  "A `completion-in-region-function' taking the best candidate, as company would.
It lists the candidates of COLLECTION for the text between START and END, orders
them by the table's `display-sort-function', inserts the first and calls the
table's :exit-function (which applies the item's textEdit)."
  (let* ((input (buffer-substring-no-properties start end))
         (metadata (completion-metadata input collection predicate))
         (sort (completion-metadata-get metadata 'display-sort-function))
         (all (all-completions input collection predicate))
         (sorted (if sort (funcall sort (copy-sequence all)) all))
         (exit (plist-get completion-extra-properties :exit-function)))
    (setq charcode-test-candidates sorted)
    (when sorted
      (let ((choice (car sorted)))
        ;; a copy: `completion--replace' strips the text properties the client keeps on it
        (completion--replace start end (concat choice))
        (when exit (funcall exit choice 'finished))))
    t))

(defvar charcode-test-server-items nil "The server's answer to the last completion request.")

(defun charcode-test-note-completion (fn method &rest args)
  "Around the clients' request functions: keep the labels of a completion response, in order."
  (let ((result (apply fn method args)))
    (when (member method '(:textDocument/completion "textDocument/completion"))
      (setq charcode-test-server-items
            (mapcar (lambda (item) (charcode-test-field item :label))
                    (append (charcode-test-field result :items) nil))))
    result))

(defun charcode-test-eglot-request (fn server method &rest args)
  (apply #'charcode-test-note-completion (lambda (m &rest a) (apply fn server m a)) method args))

(defun charcode-test-complete ()
  "Run `completion-at-point' with the best candidate chosen; report what happened."
  (setq charcode-test-candidates nil
        charcode-test-server-items nil)
  (let ((completion-in-region-function #'charcode-test-choose-first)
        (line-before (buffer-substring-no-properties (line-beginning-position) (point))))
    ;; eglot asks with `jsonrpc-request', lsp-mode with `lsp-request-while-no-input'
    (advice-add 'jsonrpc-request :around #'charcode-test-eglot-request)
    (advice-add 'lsp-request-while-no-input :around #'charcode-test-note-completion)
    (unwind-protect (completion-at-point)
      (advice-remove 'jsonrpc-request #'charcode-test-eglot-request)
      (advice-remove 'lsp-request-while-no-input #'charcode-test-note-completion))
    (list (cons 'line_before line-before)
          (cons 'server_items (vconcat charcode-test-server-items))
          (cons 'candidates (vconcat (mapcar #'substring-no-properties charcode-test-candidates)))
          (cons 'line_after (buffer-substring-no-properties (line-beginning-position)
                                                            (line-end-position)))
          (cons 'point_after (1- (point))))))

;;; the two clients

(defun charcode-test-eglot-start ()
  ;; The README hooks `eglot-ensure' to python-mode; it connects from `post-command-hook',
  ;; which batch mode never runs after visiting a file, so run it as the command loop would.
  (run-hooks 'post-command-hook)
  (charcode-test-wait "eglot to manage the buffer" (lambda () (bound-and-true-p eglot--managed-mode)))
  (let ((server (eglot-current-server)))
    (charcode-test-put 'server_name (plist-get (eglot--server-info server) :name))
    (charcode-test-put 'completion_provider
                       (and (eglot--server-capable :completionProvider) t))
    (charcode-test-put 'capf (and (memq #'eglot-completion-at-point completion-at-point-functions) t))
    (charcode-test-put 'language_id (eglot--language-id server))))

(defun charcode-test-save-trace ()
  "Save the client's log of the LSP traffic next to the output, for failures."
  (let ((buffer (if (charcode-test-eglot-p)
                    (let ((server (eglot-current-server)))
                      (and server (jsonrpc-events-buffer server)))
                  (cl-find-if (lambda (b) (string-prefix-p "*lsp-log: charcode:" (buffer-name b)))
                              (buffer-list)))))
    (when buffer
      (with-current-buffer buffer
        (write-region nil nil (concat (charcode-test-get 'output) ".events.txt") nil 'quiet)))))

(defun charcode-test-eglot-stop ()
  (let ((server (eglot-current-server)))
    (when server
      (eglot-shutdown server))))

(defun charcode-test-lsp-mode-start ()
  ;; A user answers lsp-mode's "import project root?" once; the test adds the root up front.
  (lsp-workspace-folders-add (charcode-test-get 'root))
  (setq lsp-log-io t)                   ; the traffic, saved next to the output for failures
  ;; The README hooks `lsp-deferred' to python-mode; it starts `lsp' once the buffer is shown,
  ;; from an idle timer that batch mode never runs: call `lsp' as that timer would.
  (lsp)
  (charcode-test-wait "lsp-mode to initialize charcode"
                      (lambda ()
                        (let ((ws (lsp-find-workspace 'charcode (buffer-file-name))))
                          (and ws (eq (lsp--workspace-status ws) 'initialized)))))
  (let ((ws (lsp-find-workspace 'charcode (buffer-file-name))))
    (charcode-test-put 'server_name (symbol-name (lsp--client-server-id (lsp--workspace-client ws))))
    (charcode-test-put 'completion_provider
                       (and (lsp-get (lsp--workspace-server-capabilities ws) :completionProvider) t))
    (charcode-test-put 'capf (and (memq #'lsp-completion-at-point completion-at-point-functions) t))
    (charcode-test-put 'language_id (lsp-buffer-language))))

(defun charcode-test-lsp-mode-stop ()
  (let ((ws (lsp-find-workspace 'charcode (buffer-file-name))))
    (when ws
      (lsp-workspace-shutdown ws)
      (charcode-test-wait "lsp-mode to stop the server"
                          (lambda () (not (process-live-p (lsp--workspace-proc ws))))))))

;;; the run

(defun charcode-test-eglot-p ()
  (eq (intern (charcode-test-get 'client)) 'eglot))

(defun charcode-test-field (result key)
  "KEY of a JSON object from the client (eglot: a plist; lsp-mode: its own type)."
  (if (charcode-test-eglot-p) (plist-get result key) (lsp-get result key)))

(defun charcode-test-server-text ()
  "The server's copy of the buffer (charcode.debugDocument, with CHARCODE_DEBUG=1)."
  (let ((params `(:command "charcode.debugDocument"
                  :arguments [(:uri ,(if (charcode-test-eglot-p)
                                         (eglot--path-to-uri (buffer-file-name))
                                       (lsp--buffer-uri)))])))
    (charcode-test-field
     (if (charcode-test-eglot-p)
         (progn (eglot--signal-textDocument/didChange)
                (jsonrpc-request (eglot-current-server) :workspace/executeCommand params))
       (with-lsp-workspace (lsp-find-workspace 'charcode (buffer-file-name))
         (lsp-request "workspace/executeCommand" params)))
     :text)))

(defun charcode-test-buffer-text ()
  (buffer-substring-no-properties (point-min) (point-max)))

(defun charcode-test-steps ()
  (find-file (charcode-test-get 'file))
  (charcode-test-put 'major_mode (symbol-name major-mode))
  (goto-char (point-max))
  (if (charcode-test-eglot-p) (charcode-test-eglot-start) (charcode-test-lsp-mode-start))

  ;; 1. type one more character of the word and complete it
  (insert "s")
  (charcode-test-put 'text_1 (charcode-test-buffer-text))
  (charcode-test-put 'completion_1 (charcode-test-complete))

  ;; 2. a function at the top level, from the README's command
  (goto-char (point-max))
  (insert "\n\n\n")
  (let ((before (charcode-test-buffer-text))
        (at (1- (point)))
        result)
    (charcode-test-put 'text_2 before)
    (charcode-test-put 'hallucinate_offset at)
    (funcall (if (charcode-test-eglot-p) #'charcode-hallucinate #'charcode-lsp-hallucinate)
             (lambda (r) (setq result r))
             `(:seed ,(charcode-test-get 'seed)))
    (setq result (charcode-test-wait "charcode.hallucinateFunction's result" (lambda () result)))
    (charcode-test-put 'hallucinate_text (charcode-test-field result :text))
    (charcode-test-put 'hallucinate_buffer (charcode-test-buffer-text)))

  ;; 3. type and complete after the edits the server applied
  (goto-char (point-max))
  (insert "\n\n\nre")
  (charcode-test-put 'text_3 (charcode-test-buffer-text))
  (charcode-test-put 'completion_3 (charcode-test-complete))
  (charcode-test-put 'buffer_3 (charcode-test-buffer-text))
  (charcode-test-put 'server_3 (charcode-test-server-text))

  ;; 4. an edit after characters outside the BMP (UTF-16 counts an emoji as 2)
  (goto-char (point-min))
  (end-of-line)
  (insert " ok")
  (charcode-test-put 'buffer_4 (charcode-test-buffer-text))
  (charcode-test-put 'server_4 (charcode-test-server-text))

  (charcode-test-save-trace)
  (if (charcode-test-eglot-p) (charcode-test-eglot-stop) (charcode-test-lsp-mode-stop)))

;;; settings given as initializationOptions, with eglot

(defvar charcode-test-configuration-answered nil
  "Non-nil once eglot has answered the server's workspace/configuration request.")

(defun charcode-test-note-configuration (fn server method &rest args)
  "Around `eglot-handle-request': note when a workspace/configuration reply goes out."
  (prog1 (apply fn server method args)
    (when (eq method 'workspace/configuration)
      (setq charcode-test-configuration-answered t))))

(defun charcode-test-settings-steps ()
  "Start eglot (it sends workspace/didChangeConfiguration with no charcode section, and the
server asks back with workspace/configuration); once eglot has answered, ask for completion."
  (advice-add 'eglot-handle-request :around #'charcode-test-note-configuration)
  (find-file (charcode-test-get 'file))
  (goto-char (point-max))
  (charcode-test-eglot-start)
  (charcode-test-wait "eglot to answer workspace/configuration"
                      (lambda () charcode-test-configuration-answered))
  (let ((resp (jsonrpc-request (eglot-current-server) :textDocument/completion
                               (eglot--CompletionParams))))
    (charcode-test-put 'labels (vconcat (mapcar (lambda (item) (plist-get item :label))
                                                (plist-get resp :items)))))
  (charcode-test-save-trace)
  (charcode-test-eglot-stop))

(defun charcode-test-run ()
  "Entry point: run the steps, write the report, exit."
  (setq charcode-test-config
        (json-parse-string (with-temp-buffer
                             (insert-file-contents (getenv "CHARCODE_EMACS_CONFIG"))
                             (buffer-string))
                           :object-type 'alist :array-type 'list))
  (setq charcode-test-deadline (+ (float-time) (charcode-test-get 'timeout)))
  (let ((status 0))
    (condition-case err
        (progn
          ;; as a user's Emacs does at startup: activate the installed packages (Debian's
          ;; elpa-* packages live in /usr/share/emacs/site-lisp/elpa), then read the init file
          (package-initialize)
          (load (charcode-test-get 'config) nil t)
          (charcode-test-put 'versions
                             (list (cons 'emacs emacs-version)
                                   (cons 'eglot (charcode-test-package-version 'eglot))
                                   (cons 'lsp_mode (charcode-test-package-version 'lsp-mode))))
          (if (equal (charcode-test-get 'steps) "settings")
              (charcode-test-settings-steps)
            (charcode-test-steps)))
      (error (setq status 1)
             (charcode-test-put 'error (error-message-string err))
             (ignore-errors
               (with-current-buffer (find-buffer-visiting (charcode-test-get 'file))
                 (charcode-test-save-trace)))))
    (charcode-test-put 'messages (with-current-buffer "*Messages*"
                                   (buffer-substring-no-properties (point-min) (point-max))))
    (with-temp-file (charcode-test-get 'output)
      (insert (json-encode (reverse charcode-test-out))))
    (kill-emacs status)))

(defun charcode-test-package-version (name)
  (let ((desc (cadr (assq name package-alist))))
    (and desc (package-version-join (package-desc-version desc)))))

;;; charcode-test.el ends here
