"""The built-in CRM: contacts, their identities, leads; and the chat tracker that keeps a
client's chats on one contact."""
