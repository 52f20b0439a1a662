DROP TABLE messages;
DROP TABLE chats;
DROP TABLE users;
